"""All seeds of one configuration trained as one stacked model: one forward, backward and optimizer
step for every seed (``torch.func.stack_module_state`` + ``functional_call`` under ``vmap``).

The seeds share every hyperparameter, so their parameters can live in stacked tensors (seed first)
and one optimizer can update them all: every optimizer taso-tune builds (SGD with momentum and weight
decay, Adam/AMSGrad, RMSProp, Adagrad) is elementwise, so one step over the stack is each seed's own
step. Each seed keeps what makes it that seed: its initialisation (the model built under
``torch.manual_seed(seed)``, as :class:`~taso_tune.training.run.Run` does), its data order and augmentation
(its own generator and :class:`~taso_tune.training.data.sets.DeviceBatches`), its BatchNorm running statistics (the
buffers are stacked too) and its loss, which is the mean over its own batch; the stack's loss is the
sum over the running seeds, so each seed's gradient is its own. Seed ``s`` therefore gives the numbers
of a run of that seed alone, up to the rounding of the batched kernels.

A seed that diverges is marked and left out of the loss from then on (its slice of the stack is never
read again); the others go on. :class:`StackedRuns` has the interface of
:class:`~taso_tune.training.seeds.SeedRuns`, so a trial can use either (``seed_packing``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import SEED_PACKINGS, EpochRecord, RunStatus
from taso_tune.training.data.sets import (
    PAD_LABEL,
    DeviceBatches,
    ImageData,
    check_batch_size,
    load_dataset,
)
from taso_tune.training.models import build_model
from taso_tune.training.optimizers import build_optimizer
from taso_tune.training.run import DIVERGED_LOSS, TrainConfig, at_least_float32, resolve_device
from taso_tune.training.seeds import runs_status


def resolve_packing(
    packing: str, device: torch.device, seeds: int
) -> Literal["stacked", "separate"]:
    """``auto`` is stacked on CUDA (one kernel launch for all seeds instead of k) and separate on the
    CPU, where the batched kernels are no faster than k runs (docs/benchmarks.md); one seed is
    always separate."""
    if packing not in SEED_PACKINGS:
        raise ConfigError(
            "seed_packing", packing, "unknown seed packing", choices=list(SEED_PACKINGS)
        )
    if seeds < 2:
        return "separate"
    if packing == "auto":
        return "stacked" if device.type == "cuda" else "separate"
    return packing  # type: ignore[return-value]


class StackedRuns:
    """The runs of ``config`` for each of ``seeds`` as one stacked model (``config.seed`` ignored).

    ``state_dict()`` holds the stack, the optimizer, the schedule and every seed's generator;
    ``StackedRuns(config, seeds, data, state)`` continues exactly where it stopped.
    """

    def __init__(
        self,
        config: TrainConfig,
        seeds: Sequence[int],
        data: ImageData | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        if not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError("seeds", list(seeds), "must be a non-empty list of distinct seeds")
        if config.compile:
            raise ConfigError(
                "compile", True, "is not supported with seed_packing stacked (use separate)"
            )
        if data is None:
            data = load_dataset(
                config.dataset,
                config.data_root,
                download=config.download,
                val_fraction=config.val_fraction,
                train_limit=config.train_limit,
            )
        check_batch_size(config.batch_size, data)
        self.config, self.seeds = config, tuple(seeds)
        self.device = resolve_device(config.device)
        if self.device.type == "cpu" and config.threads:
            torch.set_num_threads(config.threads)
        self.data = data.to(self.device)  # once for every seed
        info = data.info
        on_cuda = self.device.type == "cuda"
        self.memory_format = (
            torch.channels_last if on_cuda and config.channels_last else torch.contiguous_format
        )
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda and config.amp else None
        )
        modules = []
        for seed in self.seeds:
            torch.manual_seed(seed)
            modules.append(
                build_model(
                    config.model,
                    in_channels=info.in_channels,
                    image_size=info.image_size,
                    num_classes=info.num_classes,
                ).to(self.device, memory_format=self.memory_format)
            )
        self.params, self.buffers = stack_module_state(modules)
        self.base = copy.deepcopy(modules[0]).to("meta")  # the architecture, without storage
        self.generators = [
            torch.Generator(device=self.device).manual_seed(seed) for seed in self.seeds
        ]
        self.batches = [
            DeviceBatches(
                self.data.x_train,
                self.data.y_train,
                info,
                config.batch_size,
                generator=g,
                augment=info.augment,
                drop_last=True,
                memory_format=self.memory_format,
            )
            for g in self.generators
        ]
        self.optimizer, self.scheduler = build_optimizer(
            config.optimizer,
            list(self.params.values()),
            config.epochs,
            config.hparams,
            steps_per_epoch=len(self.batches[0]),
            granularity=config.schedule_granularity,
            fused=on_cuda,
        )
        self.epochs = dict.fromkeys(self.seeds, 0)
        self.statuses: dict[int, RunStatus] = dict.fromkeys(self.seeds, "running")
        #: each seed's latest record (a diverged seed keeps its last one)
        self.last: dict[int, EpochRecord] = {}
        if state is not None:
            self.load_state_dict(state)

    @property
    def status(self) -> RunStatus:
        return runs_status(self.statuses.values())

    @property
    def epoch(self) -> int:
        return max(self.epochs.values())

    @property
    def num_classes(self) -> int:
        return self.data.info.num_classes

    def step_epoch(self) -> dict[int, EpochRecord]:
        """Train the next epoch of every running seed; every seed's latest record, by seed."""
        if self.status != "running":
            raise RuntimeError(f"runs are {self.status}; nothing left to train")
        running = [i for i, seed in enumerate(self.seeds) if self.statuses[seed] == "running"]
        lr = float(self.optimizer.param_groups[0]["lr"])
        start = time.perf_counter()
        losses, accuracies, seen = self._train_epoch(running)
        train_seconds = time.perf_counter() - start
        evaluated = {
            split: evaluate_stacked(self, *split_data)
            for split, split_data in self._splits().items()
        }
        seconds = time.perf_counter() - start
        for i in running:
            seed = self.seeds[i]
            self.epochs[seed] += 1
            record: EpochRecord = {
                "epoch": self.epochs[seed],
                "total_epochs": self.config.epochs,
                "lr": lr,  # type: ignore[typeddict-item]
                "train_loss": losses[i],
                "train_acc": accuracies[i],
            }
            for split, (split_losses, split_accs) in evaluated.items():
                record[f"{split}_loss"], record[f"{split}_acc"] = split_losses[i], split_accs[i]  # type: ignore[literal-required]
            record["epoch_seconds"] = seconds / len(running)  # the seeds' shared time, split evenly
            record["images_per_second"] = seen / train_seconds if train_seconds > 0 else math.nan
            if not math.isfinite(losses[i]) or losses[i] > DIVERGED_LOSS:
                self.statuses[seed] = "diverged"
            elif self.epochs[seed] >= self.config.epochs:
                self.statuses[seed] = "complete"
            record["status"] = self.statuses[seed]
            self.last[seed] = record
        return {seed: self.last[seed] for seed in self.seeds}

    def _train_epoch(self, running: list[int]) -> tuple[list[float], list[float], int]:
        self.base.train()
        k = len(self.seeds)
        loss_sum = torch.zeros(k, device=self.device)
        correct = torch.zeros(k, device=self.device, dtype=torch.int64)
        mask = torch.zeros(k, device=self.device, dtype=torch.bool)
        mask[running] = True
        seen = 0
        per_step = self.scheduler.granularity == "step"
        for pairs in zip(*self.batches, strict=True):
            xb = torch.stack([x for x, _ in pairs])
            yb = torch.stack([y for _, y in pairs])
            logits = stacked_logits(self, xb, shared_input=False)
            losses = (
                F.cross_entropy(
                    at_least_float32(logits.flatten(0, 1)), yb.flatten(), reduction="none"
                )
                .view(k, -1)
                .mean(1)
            )
            self.optimizer.zero_grad(set_to_none=True)
            torch.where(mask, losses, torch.zeros_like(losses)).sum().backward()
            self.optimizer.step()
            if per_step:
                self.scheduler.step()
            loss_sum += losses.detach() * yb.shape[1]
            correct += (logits.argmax(-1) == yb).sum(1)
            seen += yb.shape[1]
        if not per_step:
            self.scheduler.step()
        return (loss_sum / max(seen, 1)).tolist(), (correct.double() / max(seen, 1)).tolist(), seen

    def _splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        splits = {"test": (self.data.x_test, self.data.y_test)}
        if len(self.data.y_val):
            splits = {"val": (self.data.x_val, self.data.y_val), **splits}
        return splits

    # --- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "packing": "stacked",
            "seeds": list(self.seeds),
            "params": dict(self.params),
            "buffers": dict(self.buffers),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generators": [g.get_state() for g in self.generators],
            "epochs": {str(s): e for s, e in self.epochs.items()},
            "statuses": {str(s): v for s, v in self.statuses.items()},
            "last": {str(s): dict(r) for s, r in self.last.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("packing") != "stacked" or list(state.get("seeds", ())) != list(self.seeds):
            raise ConfigError(
                "seed_packing",
                "stacked",
                "the checkpoint was written by another seed packing or "
                "other seeds; resume with the packing and seeds it was written with",
            )
        with torch.no_grad():
            for name, tensor in self.params.items():
                tensor.copy_(state["params"][name])
            for name, tensor in self.buffers.items():
                tensor.copy_(state["buffers"][name])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for generator, saved in zip(self.generators, state["generators"], strict=True):
            generator.set_state(saved)
        self.epochs = {int(s): int(e) for s, e in state["epochs"].items()}
        self.statuses = {int(s): v for s, v in state["statuses"].items()}
        self.last = {int(s): r for s, r in state["last"].items()}


def stacked_logits(runs: StackedRuns, x: torch.Tensor, shared_input: bool) -> torch.Tensor:
    """Every seed's logits, ``[seeds, batch, classes]``: ``x`` is ``[seeds, batch, ...]`` (each seed
    its own batch), or one batch that every seed sees (``shared_input``)."""

    def one(params: dict, buffers: dict, xb: torch.Tensor) -> torch.Tensor:
        return functional_call(runs.base, (params, buffers), (xb,))

    batched = vmap(one, in_dims=(0, 0, None if shared_input else 0))
    if runs.autocast is None:
        return batched(runs.params, runs.buffers, x)
    with runs.autocast:
        return batched(runs.params, runs.buffers, x)


@torch.no_grad()
def evaluate_stacked(
    runs: StackedRuns, x: torch.Tensor, y: torch.Tensor
) -> tuple[list[float], list[float]]:
    """Every seed's mean loss and accuracy on a split, in eval mode (no augmentation)."""
    runs.base.eval()
    k = len(runs.seeds)
    loss_sum = torch.zeros(k, device=runs.device)
    correct = torch.zeros(k, device=runs.device, dtype=torch.int64)
    batches = DeviceBatches(
        x, y, runs.data.info, max(runs.config.batch_size, 256), memory_format=runs.memory_format
    )
    for xb, yb in batches:
        logits = at_least_float32(stacked_logits(runs, xb, shared_input=True))
        flat = F.cross_entropy(
            logits.flatten(0, 1), yb.repeat(k), reduction="none", ignore_index=PAD_LABEL
        )
        loss_sum += flat.view(k, -1).sum(1)
        correct += (logits.argmax(-1) == yb).sum(1)
    n = max(len(y), 1)
    return (loss_sum / n).tolist(), (correct.double() / n).tolist()
