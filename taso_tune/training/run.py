"""One seed's training run, framework-free: :class:`TrainConfig`, :class:`Run` and ``fit(config)``,
which yields one record per epoch.

Nothing here knows about Ray. A trial trains its seeds through :mod:`taso_tune.training.seeds`
(one :class:`Run` a seed) or :mod:`taso_tune.training.stacked`; ``taso-tune train`` runs one
:class:`Run`; ``fit`` is the plain loop a notebook or a benchmark times.

The training step never synchronises with the host: loss and accuracy accumulate on the device and
are read once per epoch. The epoch's record and the divergence rule are those of
:mod:`taso_tune.training.epoch`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F

from taso_tune.core.checks import check_integer
from taso_tune.core.errors import ConfigError
from taso_tune.core.records import EpochRecord, RunStatus
from taso_tune.schedules.lr_scheduler import CooldownLR
from taso_tune.schedules.maths import ScheduleGranularity
from taso_tune.training.data.custom import IMAGE_FOLDER
from taso_tune.training.data.sets import DeviceBatches, ImageData, check_dataset_name
from taso_tune.training.device import Device, DeviceSetup
from taso_tune.training.epoch import epoch_record, has_diverged
from taso_tune.training.evaluate import at_least_float32, evaluate_seeds, held_out_splits
from taso_tune.training.models import build_model_with_notes, check_model_name
from taso_tune.training.optimizers import (
    build_optimizer,
    resolve_granularity,
    resolve_hparams,
    set_mode,
)


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


def global_rng_state(device: torch.device) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    if device.type == "cuda":
        return torch.get_rng_state(), torch.cuda.get_rng_state(device)
    return torch.get_rng_state()


def set_global_rng_state(device: torch.device, state: Any) -> None:
    if device.type == "cuda" and isinstance(state, (tuple, list)):
        torch.set_rng_state(state[0])
        torch.cuda.set_rng_state(state[1], device)
    else:
        torch.set_rng_state(state[0] if isinstance(state, (tuple, list)) else state)


@contextlib.contextmanager
def _own_rng(run: Run) -> Iterator[None]:
    """Put ``run``'s global RNG state in force, and keep what it became, while the run trains."""
    outer = global_rng_state(run.device)
    set_global_rng_state(run.device, run.rng_state)
    try:
        yield
    finally:
        run.rng_state = global_rng_state(run.device)
        set_global_rng_state(run.device, outer)


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
        *,
        setup: DeviceSetup | None = None,
    ) -> None:
        """``setup`` and ``data`` already on its device are a trial's, shared by its seeds; without
        them the run sets its device up and loads ``config``'s data set itself."""
        self.config = config
        self.setup = setup or DeviceSetup.of(config)
        self.device = self.setup.device
        self.data = self.setup.data(config, data)
        info = self.data.info
        torch.manual_seed(config.seed)
        module, self.model_notes = build_model_with_notes(
            config.model,
            in_channels=info.in_channels,
            image_size=info.image_size,
            num_classes=info.num_classes,
        )
        self.module = module.to(self.device, memory_format=self.setup.memory_format)
        # the global RNG (dropout) is this run's own: several runs in one process do not share it
        self.rng_state = global_rng_state(self.device)
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
            memory_format=self.setup.memory_format,
        )
        self.optimizer, self.scheduler = build_optimizer(
            config.optimizer,
            self.module.parameters(),
            config.epochs,
            config.hparams,
            steps_per_epoch=len(self.train_batches),
            granularity=config.schedule_granularity,
            fused=self.setup.on_cuda,
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
        set_mode(self.optimizer, training=True)  # a schedule-free optimizer steps its own iterate
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        seen = 0
        per_step = self.scheduler.granularity == "step"
        for xb, yb in self.train_batches:
            with self.setup.autocast():
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
        self.module.eval()
        losses, accuracies = evaluate_seeds(
            lambda xb: self.forward(xb).unsqueeze(0),
            x,
            y,
            seeds=1,
            data=self.data,
            batch_size=self.config.batch_size,
            setup=self.setup,
            pad_last=self.config.compile,
        )
        return losses[0], accuracies[0]

    @property
    def decays(self) -> bool:
        """Whether the run's lr schedule has a decay a cooldown branch can compress (a constant rate
        and a schedule-free optimizer, which averages its own weights instead, have none)."""
        return self.scheduler.decays

    def cooldown(self, epochs: int) -> dict[str, tuple[float, float]]:
        """Train a throwaway cooldown branch of ``epochs`` epochs from where the run is and return its
        mean loss and accuracy on each held-out split.

        A run whose schedule decays (:attr:`decays`) anneals in the branch: its lr is the rest of the
        schedule's decay compressed into the branch's steps
        (:class:`~taso_tune.schedules.lr_scheduler.CooldownLR`). A constant rate, or a schedule-free
        optimizer, trains the branch at its own rate (evaluated, as always, at its averaged
        weights), so every run is judged after the same training, annealed where its schedule
        anneals. A branch whose training loss diverges (:func:`~taso_tune.training.epoch.has_diverged`)
        scores NaN on every split, which the statistics rule scores at chance level.

        The run is left exactly as it was: model, optimizer, schedule, data order and RNG are put back
        from a copy taken before the branch, so the main run goes on with the same numbers as a run
        that never branched.
        """
        if self.status != "running":
            raise RuntimeError(f"run is {self.status}; nothing to cool down")
        check_integer("epochs", epochs, 1)
        saved = copy.deepcopy(self.state_dict())
        main = self.scheduler
        try:
            if self.decays:
                steps = epochs * len(self.train_batches)
                self.scheduler = CooldownLR(self.optimizer, main, steps)  # type: ignore[assignment]
            with _own_rng(self):
                for _ in range(epochs):
                    train_loss, _, _ = self.train_epoch()
                    if has_diverged(train_loss):
                        nan = (math.nan, math.nan)
                        return {split: nan for split in held_out_splits(self.data)}
            set_mode(self.optimizer, training=False)
            return {
                split: self.evaluate(x, y) for split, (x, y) in held_out_splits(self.data).items()
            }
        finally:
            self.scheduler = main
            self.load_state_dict(saved)

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
        set_mode(self.optimizer, training=False)  # evaluated (and saved) at its averaged weights
        evaluated = {
            split: self.evaluate(x, y) for split, (x, y) in held_out_splits(self.data).items()
        }
        record = epoch_record(
            epoch=self.epoch,
            total_epochs=self.config.epochs,
            lr=lr,
            train_loss=train_loss,
            train_acc=train_acc,
            evaluated=evaluated,
            epoch_seconds=time.perf_counter() - start,
            images_per_second=seen / train_seconds if train_seconds > 0 else float("nan"),
        )
        self.status = record["status"]
        return record


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
