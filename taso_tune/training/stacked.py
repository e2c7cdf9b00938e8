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
read again); the others go on. :class:`StackedRuns` and :class:`~taso_tune.training.seeds.SeedRuns`
are the two :class:`~taso_tune.training.seeds.SeedTraining` a trial can use (``seed_packing``); they
share the device set-up, the epoch record, the divergence rule and the evaluation.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import EpochRecord, RunStatus
from taso_tune.schedules.lr_scheduler import CooldownLR
from taso_tune.training.data.sets import DeviceBatches, ImageData
from taso_tune.training.device import DeviceSetup
from taso_tune.training.epoch import epoch_record, has_diverged
from taso_tune.training.evaluate import at_least_float32, evaluate_seeds, held_out_splits
from taso_tune.training.models import build_model_with_notes
from taso_tune.training.optimizers import build_optimizer, set_mode
from taso_tune.training.run import TrainConfig, global_rng_state, set_global_rng_state
from taso_tune.training.seeds import Packing, check_packing, check_seeds, runs_status
from taso_tune.training.user_code import error_line


class StackedRuns:
    """The runs of ``config`` for each of ``seeds`` as one stacked model (``config.seed`` ignored).

    ``state_dict()`` holds the stack, the optimizer, the schedule and every seed's generator;
    ``StackedRuns(config, seeds, data, state)`` continues exactly where it stopped. ``setup`` is the
    device set-up (``config``'s when ``None``).
    """

    packing: Packing = "stacked"

    def __init__(
        self,
        config: TrainConfig,
        seeds: Sequence[int],
        data: ImageData | None = None,
        state: Mapping[str, Any] | None = None,
        *,
        setup: DeviceSetup | None = None,
    ) -> None:
        seeds = check_seeds(seeds)
        if config.compile:
            raise ConfigError(
                "compile", True, "is not supported with seed_packing stacked (use separate)"
            )
        self.config, self.seeds = config, seeds
        self.setup = setup or DeviceSetup.of(config)
        self.device = self.setup.device
        self.data = self.setup.data(config, data)  # once for every seed
        info = self.data.info
        modules = []
        for seed in self.seeds:
            torch.manual_seed(seed)
            module, self.model_notes = build_model_with_notes(
                config.model,
                in_channels=info.in_channels,
                image_size=info.image_size,
                num_classes=info.num_classes,
            )
            modules.append(module.to(self.device, memory_format=self.setup.memory_format))
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
                memory_format=self.setup.memory_format,
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
            fused=self.setup.on_cuda,
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
        evaluated = self._evaluate_held_out()  # at a schedule-free optimizer's averaged weights
        seconds = time.perf_counter() - start
        for i in running:
            seed = self.seeds[i]
            self.epochs[seed] += 1
            record = epoch_record(
                epoch=self.epochs[seed],
                total_epochs=self.config.epochs,
                lr=lr,
                train_loss=losses[i],
                train_acc=accuracies[i],
                evaluated={split: (ls[i], accs[i]) for split, (ls, accs) in evaluated.items()},
                epoch_seconds=seconds / len(running),  # the seeds' shared time, split evenly
                images_per_second=seen / train_seconds if train_seconds > 0 else math.nan,
            )
            self.statuses[seed] = record["status"]
            self.last[seed] = record
        return {seed: self.last[seed] for seed in self.seeds}

    def cooldown(self, epochs: int) -> tuple[dict[int, dict[str, float]], int]:
        """Every running seed's throwaway cooldown branch, trained stacked as the main run is (see
        :meth:`~taso_tune.training.run.Run.cooldown`: annealed where the schedule decays, at its own
        rate where it does not; a seed whose branch diverges scores NaN); the runs, their
        generators and the global RNG are put back as they were."""
        running = [i for i, seed in enumerate(self.seeds) if self.statuses[seed] == "running"]
        saved, rng = copy.deepcopy(self.state_dict()), global_rng_state(self.device)
        main = self.scheduler
        diverged: set[int] = set()
        try:
            if self.scheduler.decays:
                steps = epochs * len(self.batches[0])
                self.scheduler = CooldownLR(self.optimizer, main, steps)  # type: ignore[assignment]
            for _ in range(epochs):
                losses, _, _ = self._train_epoch(running)
                diverged |= {i for i in running if has_diverged(losses[i])}
            evaluated = self._evaluate_held_out()
        finally:
            self.scheduler = main
            self.load_state_dict(saved)
            set_global_rng_state(self.device, rng)
        branches = {
            self.seeds[i]: {
                f"{split}_{name}": math.nan if i in diverged else values[i]
                for split, (losses, accuracies) in evaluated.items()
                for name, values in (("loss", losses), ("acc", accuracies))
            }
            for i in running
        }
        return branches, epochs * len(running)

    def _evaluate_held_out(self) -> dict[str, tuple[list[float], list[float]]]:
        self.base.eval()
        set_mode(self.optimizer, training=False)
        return {split: self._evaluate(x, y) for split, (x, y) in held_out_splits(self.data).items()}

    def _train_epoch(self, running: list[int]) -> tuple[list[float], list[float], int]:
        self.base.train()
        set_mode(self.optimizer, training=True)  # a schedule-free optimizer steps its own iterate
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
            logits = self._logits(xb, shared_input=False)
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

    def _logits(self, x: torch.Tensor, shared_input: bool) -> torch.Tensor:
        """Every seed's logits, ``[seeds, batch, classes]``: ``x`` is ``[seeds, batch, ...]`` (each
        seed its own batch), or one batch that every seed sees (``shared_input``)."""
        with self.setup.autocast():
            return stacked_forward(self.base, self.params, self.buffers, x, shared_input)

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        return evaluate_seeds(
            lambda xb: self._logits(xb, shared_input=True),
            x,
            y,
            seeds=len(self.seeds),
            data=self.data,
            batch_size=self.config.batch_size,
            setup=self.setup,
        )

    # --- checkpointing -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "packing": self.packing,
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
        check_packing(state, self.packing, self.seeds)
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


def stacked_forward(
    base: torch.nn.Module,
    params: Mapping[str, torch.Tensor],
    buffers: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    shared_input: bool,
) -> torch.Tensor:
    """The forward of every seed of a stack at once: ``base`` (the architecture) called with each
    seed's slice of ``params`` and ``buffers`` under ``vmap``, on ``x`` of ``[seeds, batch, ...]`` or
    one batch every seed sees (``shared_input``)."""

    def one(seed_params: dict, seed_buffers: dict, xb: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (seed_params, seed_buffers), (xb,))

    return vmap(one, in_dims=(0, 0, None if shared_input else 0))(params, buffers, x)


def check_stackable(model: str, in_channels: int, image_size: int, num_classes: int) -> None:
    """Train-mode forward and backward of two seeds of ``model`` stacked, as a trial of stacked seeds
    runs them: a model ``vmap`` cannot batch (dropout, ``.item()``, data-dependent control flow) is
    refused here, before Ray starts, instead of failing every trial."""
    modules = [
        build_model_with_notes(
            model, in_channels=in_channels, image_size=image_size, num_classes=num_classes
        )[0]
        for _ in range(2)
    ]
    params, buffers = stack_module_state(modules)
    base = copy.deepcopy(modules[0]).to("meta").train()
    try:
        out = stacked_forward(
            base, params, buffers, torch.zeros(2, 2, in_channels, image_size, image_size), False
        )
        out.sum().backward()
    except Exception as err:  # what torch.func refuses in the user's model, said with its own words
        raise ConfigError(
            "seed_packing",
            "stacked",
            f"model {model!r} cannot train its seeds stacked ({error_line(err)}); "
            "use seed_packing: separate or auto (auto trains them one after another)",
        ) from None
