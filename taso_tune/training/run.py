"""A framework-free training loop: ``fit(config)`` yields one record per epoch.

Nothing here knows about Ray. The Ray layer wraps :class:`Run` (for checkpoints) and ``fit``; a
notebook or a test can use them directly.

The training step never synchronises with the host: loss and accuracy accumulate on the device and
are read once per epoch. A training loss that is non-finite, or above ``DIVERGED_LOSS`` (logits blown
up: with SGD at lr 2 the paper's VGG19 ended at chance level), ends the run with status ``diverged``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

import torch
import torch.nn.functional as F

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import EpochRecord, RunStatus
from taso_tune.schedules.maths import ScheduleGranularity
from taso_tune.training.data.custom import IMAGE_FOLDER
from taso_tune.training.data.sets import (
    PAD_LABEL,
    DeviceBatches,
    ImageData,
    check_batch_size,
    check_dataset_name,
    load_dataset,
)
from taso_tune.training.models import build_model_with_notes, check_model_name
from taso_tune.training.optimizers import build_optimizer, resolve_granularity, resolve_hparams

#: An epoch's mean cross-entropy above this means the weights blew up (chance level is ln(classes) ~ 2.3-4.6).
DIVERGED_LOSS = 1e4

Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; validated on construction.

    ``hparams`` holds the optimizer recipe's fields (lr, momentum, alpha, beta, ...); missing ones
    take the recipe's defaults. ``schedule_granularity`` says how often the lr schedule updates:
    ``auto`` is the recipe's own (TASO per epoch as in the paper, the annealing baselines per step),
    ``epoch`` or ``step`` force one for any recipe.
    """

    model: str = "lenet5"
    dataset: str = "digits"
    optimizer: str = "taso"
    epochs: int = 20
    batch_size: int = 64
    seed: int = 0
    hparams: Mapping[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    download: bool = False
    val_fraction: float = 0.1
    train_limit: int | None = None
    image_size: int | None = None  # imagefolder: the side images are resized to
    data_memory_gb: float | None = None  # imagefolder: refuse a folder larger than this in memory
    device: Device = "auto"
    threads: int | None = None
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True  # on CUDA, for conv nets
    compile: bool = False
    schedule_granularity: ScheduleGranularity = "auto"

    def __post_init__(self) -> None:
        check_model_name(self.model)
        check_dataset_name(self.dataset)
        if self.image_size is not None:
            if self.dataset != IMAGE_FOLDER:
                raise ConfigError(
                    "image_size",
                    self.image_size,
                    "applies to imagefolder only; other data sets keep their images' size",
                )
            if (
                isinstance(self.image_size, bool)
                or not isinstance(self.image_size, int)
                or not (8 <= self.image_size <= 4096)
            ):
                raise ConfigError("image_size", self.image_size, "must be an integer in [8, 4096]")
        if self.data_memory_gb is not None and (
            isinstance(self.data_memory_gb, bool)
            or not isinstance(self.data_memory_gb, (int, float))
            or not math.isfinite(self.data_memory_gb)
            or self.data_memory_gb <= 0
        ):
            raise ConfigError("data_memory_gb", self.data_memory_gb, "must be a number > 0")
        resolved = resolve_hparams(self.optimizer, self.hparams)
        object.__setattr__(self, "hparams", resolved)
        for name, lowest in (("epochs", 1), ("batch_size", 1), ("threads", 1)):
            value = getattr(self, name)
            if value is None and name == "threads":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                raise ConfigError(name, value, f"must be an integer >= {lowest}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError("seed", self.seed, "must be an integer")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError("val_fraction", self.val_fraction, "must be in [0, 1)")
        resolve_granularity(self.optimizer, self.schedule_granularity)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(
                "device", self.device, "unknown device", choices=["auto", "cpu", "cuda"]
            )
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device", self.device, "CUDA is not available on this machine")

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from one flat dict (a Tune trial config): own fields by name, the rest go to
        ``hparams`` and are checked against the optimizer's recipe."""
        own = {f.name for f in fields(cls)} - {"hparams"}
        values = dict(values)
        if (
            isinstance(values.get("schedule_per_step"), bool)
            and "schedule_granularity" not in values
        ):
            # the flag schedule_granularity replaced, as configs written before it hold it (a resumed sweep)
            values["schedule_granularity"] = "step" if values.pop("schedule_per_step") else "epoch"
        kwargs = {k: v for k, v in values.items() if k in own}
        hparams = {k: v for k, v in values.items() if k not in own}
        hparams.update(values.get("hparams", {}) or {})
        hparams.pop("hparams", None)
        return cls(**kwargs, hparams=hparams)

    def to_flat(self) -> dict[str, Any]:
        """One flat dict with the optimizer's fields beside the run's own (inverse of from_flat)."""
        flat = {k: v for k, v in asdict(self).items() if k != "hparams"}
        flat.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.hparams.items()})
        return flat


def load_data(config: TrainConfig) -> ImageData:
    """The data set ``config`` trains on, loaded and split."""
    return load_dataset(
        config.dataset,
        config.data_root,
        download=config.download,
        val_fraction=config.val_fraction,
        train_limit=config.train_limit,
        image_size=config.image_size,
        data_memory_gb=config.data_memory_gb,
    )


def resolve_device(device: Device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _global_rng_state(device: torch.device) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    if device.type == "cuda":
        return torch.get_rng_state(), torch.cuda.get_rng_state(device)
    return torch.get_rng_state()


def _set_global_rng_state(device: torch.device, state: Any) -> None:
    if device.type == "cuda" and isinstance(state, (tuple, list)):
        torch.set_rng_state(state[0])
        torch.cuda.set_rng_state(state[1], device)
    else:
        torch.set_rng_state(state[0] if isinstance(state, (tuple, list)) else state)


@contextlib.contextmanager
def _own_rng(run: Run) -> Iterator[None]:
    """Put ``run``'s global RNG state in force, and keep what it became, while the run trains."""
    outer = _global_rng_state(run.device)
    _set_global_rng_state(run.device, run.rng_state)
    try:
        yield
    finally:
        run.rng_state = _global_rng_state(run.device)
        _set_global_rng_state(run.device, outer)


class Run:
    """The state of one training run: model, optimizer, schedule, RNG and epochs done.

    ``state_dict()`` after any epoch and ``Run(config, data, state)`` continue the run exactly where
    it stopped (same metrics on CPU as a run never stopped).
    """

    def __init__(
        self,
        config: TrainConfig,
        data: ImageData | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        if self.device.type == "cpu" and config.threads:
            torch.set_num_threads(config.threads)
        if data is None:
            data = load_data(config)
        check_batch_size(config.batch_size, data)
        self.data = data.to(self.device)
        info = data.info
        on_cuda = self.device.type == "cuda"
        self.memory_format = (
            torch.channels_last if on_cuda and config.channels_last else torch.contiguous_format
        )
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if on_cuda and config.amp
            else contextlib.nullcontext()
        )
        torch.manual_seed(config.seed)
        module, self.model_notes = build_model_with_notes(
            config.model,
            in_channels=info.in_channels,
            image_size=info.image_size,
            num_classes=info.num_classes,
        )
        self.module = module.to(self.device, memory_format=self.memory_format)
        # the global RNG (dropout) is this run's own: several runs in one process do not share it
        self.rng_state = _global_rng_state(self.device)
        # static shapes: training drops its last partial batch and evaluation pads its own, so a
        # compiled run has exactly two graphs (train, eval), each for one batch shape
        self.forward = torch.compile(self.module, dynamic=False) if config.compile else self.module
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        self.train_batches = DeviceBatches(
            self.data.x_train,
            self.data.y_train,
            info,
            config.batch_size,
            generator=self.generator,
            augment=info.augment,
            drop_last=True,
            memory_format=self.memory_format,
        )
        self.optimizer, self.scheduler = build_optimizer(
            config.optimizer,
            self.module.parameters(),
            config.epochs,
            config.hparams,
            steps_per_epoch=len(self.train_batches),
            granularity=config.schedule_granularity,
            fused=on_cuda,
        )
        self.epoch = 0
        self.status: RunStatus = "running"
        if state is not None:
            self.load_state_dict(state)

    # --- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "status": self.status,
            "config": self.config.to_flat(),
            "model": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": self.rng_state,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        self.rng_state = state["torch_rng"]
        self.epoch = int(state["epoch"])
        self.status = state["status"]

    # --- one epoch -----------------------------------------------------------------------------
    def train_epoch(self) -> tuple[float, float, int]:
        """Train one epoch; returns (mean loss, accuracy, images seen). One host sync at the end."""
        self.module.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        seen = 0
        per_step = self.scheduler.granularity == "step"
        for xb, yb in self.train_batches:
            with self.autocast:
                logits = self.forward(xb)
                loss = F.cross_entropy(logits, yb)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if per_step:
                self.scheduler.step()
            loss_sum += at_least_float32(loss.detach()) * len(yb)
            correct += (logits.argmax(1) == yb).sum()
            seen += len(yb)
        if not per_step:
            self.scheduler.step()
        return (loss_sum / max(seen, 1)).item(), correct.item() / max(seen, 1), seen

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """Mean loss and accuracy on a split (no augmentation)."""
        return evaluate_split(self, x, y)

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def step_epoch(self) -> EpochRecord:
        """Run the next epoch and return its record."""
        if self.status != "running":
            raise RuntimeError(f"run is {self.status}; nothing left to train")
        lr = self.current_lr()
        start = time.perf_counter()
        with _own_rng(self):
            train_loss, train_acc, seen = self.train_epoch()
        train_seconds = time.perf_counter() - start
        self.epoch += 1
        record: EpochRecord = {  # type: ignore[typeddict-item]  # filled below
            "epoch": self.epoch,
            "total_epochs": self.config.epochs,
            "lr": lr,
            "train_loss": train_loss,
            "train_acc": train_acc,
        }
        if len(self.data.y_val):
            record["val_loss"], record["val_acc"] = self.evaluate(self.data.x_val, self.data.y_val)
        record["test_loss"], record["test_acc"] = self.evaluate(self.data.x_test, self.data.y_test)
        record["epoch_seconds"] = time.perf_counter() - start
        record["images_per_second"] = seen / train_seconds if train_seconds > 0 else float("nan")
        if not math.isfinite(train_loss) or train_loss > DIVERGED_LOSS:
            self.status = "diverged"
        elif self.epoch >= self.config.epochs:
            self.status = "complete"
        record["status"] = self.status
        return record


def at_least_float32(values: torch.Tensor) -> torch.Tensor:
    """Logits or losses to compute and sum a loss in: bf16 (autocast) raised to float32, float32
    and float64 (a model built under ``torch.set_default_dtype(torch.float64)``) kept as they are."""
    return values.to(torch.promote_types(values.dtype, torch.float32))


@torch.no_grad()
def evaluate_split(run: Run, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean loss and accuracy of ``run``'s model on a split, in eval mode (no augmentation)."""
    run.module.eval()
    loss_sum = torch.zeros((), device=run.device)
    correct = torch.zeros((), device=run.device, dtype=torch.int64)
    # a compiled model sees one evaluation shape: the last partial batch is padded (PAD_LABEL rows
    # count in neither the loss nor the accuracy)
    batches = DeviceBatches(
        x,
        y,
        run.data.info,
        max(run.config.batch_size, 256),
        pad_last=run.config.compile,
        memory_format=run.memory_format,
    )
    for xb, yb in batches:
        with run.autocast:
            logits = run.forward(xb)
        loss_sum += F.cross_entropy(
            at_least_float32(logits), yb, reduction="sum", ignore_index=PAD_LABEL
        )
        correct += (logits.argmax(1) == yb).sum()
    n = max(len(y), 1)
    return (loss_sum / n).item(), correct.item() / n


def fit(
    config: TrainConfig,
    data: ImageData | None = None,
    state: Mapping[str, Any] | None = None,
) -> Iterator[EpochRecord]:
    """Train ``config`` and yield one record per epoch (epoch, lr, losses, accuracies, timings, status).

    Pass ``state`` (a :meth:`Run.state_dict`) to continue a stopped run. The generator stops after the
    last epoch or after a ``diverged`` record.
    """
    run = Run(config, data, state)
    while run.status == "running":
        yield run.step_epoch()
