"""Torch adapters: ``LRScheduler`` subclasses that evaluate the pure schedules in ``maths.py``.

The scheduler stores only plain values (schedule name, its parameters, the plan's size, the update
count), so ``state_dict()`` / ``load_state_dict()`` restore it exactly, and it is safe under
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from taso_tune.core.checks import check_integer
from taso_tune.schedules.maths import (
    TASO_ALPHA,
    TASO_BETA,
    Granularity,
    check_schedule_params,
    check_taso_params,
    cooldown_lr,
    decay_start,
    get_schedule,
)


class ScheduledLR(LRScheduler):
    """Drive each param group's lr by a named schedule over a plan of lr updates.

    Per epoch (without ``steps_per_epoch``): call ``step()`` once after each epoch; the plan has
    ``total_epochs`` updates and during epoch k the lr is ``schedule(k, total_epochs,
    lr_initial=<group's initial lr>, **params)``. Per step (``steps_per_epoch`` given): call
    ``step()`` after every optimizer step; the plan has ``total_epochs * steps_per_epoch`` updates
    and the lr of global step s (0-based) is the schedule at update ``s + 1``. Either way the plan's
    last update is the schedule's last value (``lr_final`` for the annealing schedules).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        schedule: str,
        total_epochs: int,
        steps_per_epoch: int | None = None,
        last_epoch: int = -1,
        **params: Any,
    ) -> None:
        get_schedule(schedule)  # fail early with the list of valid names
        self.schedule = schedule
        self.total_epochs = check_integer("total_epochs", total_epochs, 1)
        self.steps_per_epoch = (
            None
            if steps_per_epoch is None
            else check_integer("steps_per_epoch", steps_per_epoch, 1)
        )
        self.params = dict(params)
        for group in optimizer.param_groups:
            # validate every group's values now rather than at the first step
            check_schedule_params(
                schedule, lr_initial=group.get("initial_lr", group["lr"]), **self.params
            )
        super().__init__(optimizer, last_epoch)

    @property
    def granularity(self) -> Granularity:
        """``"step"``: call ``step()`` after every optimizer step; ``"epoch"``: after every epoch."""
        return "epoch" if self.steps_per_epoch is None else "step"

    @property
    def total_updates(self) -> int:
        """The number of lr updates in the plan: epochs, or epochs x steps per epoch."""
        return self.total_epochs * (self.steps_per_epoch or 1)

    @property
    def decays(self) -> bool:
        """Whether the schedule has a decay a cooldown branch can compress (``constant`` has none)."""
        return decay_start(self.schedule, self.total_updates) is not None

    def current_update(self) -> int:
        """The 1-based update of the plan whose lr is in force now."""
        return self.last_epoch + 1

    def current_epoch(self) -> float:
        """Epochs into the plan at the current update: k per epoch, ``update / steps_per_epoch`` per step."""
        return self.current_update() / (self.steps_per_epoch or 1)

    def get_lr(self) -> list[float]:
        fn = get_schedule(self.schedule)
        update, total = self.current_update(), self.total_updates
        return [fn(update, total, lr_initial=base, **self.params) for base in self.base_lrs]

    _get_closed_form_lr = get_lr


class TASO(ScheduledLR):
    """The Training Aware Sigmoidal Optimizer schedule, Eq. (1), as a torch ``LRScheduler``.

    ``lr_final=None`` means each param group's initial lr / 20, the paper's recommendation. Wrap an
    ``SGD(momentum=0.9)`` optimizer to get the paper's TASO::

        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        scheduler = TASO(optimizer, total_epochs=100)   # alpha=25, beta=0.7
        for epoch in range(100):
            train_one_epoch(...)
            scheduler.step()
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_epochs: int,
        alpha: float = TASO_ALPHA,
        beta: float = TASO_BETA,
        lr_final: float | None = None,
        steps_per_epoch: int | None = None,
        last_epoch: int = -1,
    ) -> None:
        check_taso_params(alpha, beta)
        super().__init__(
            optimizer,
            "taso",
            total_epochs,
            steps_per_epoch=steps_per_epoch,
            last_epoch=last_epoch,
            alpha=alpha,
            beta=beta,
            lr_final=lr_final,
        )


class CooldownLR:
    """The lr of a throwaway cooldown branch forked from a run under ``main``: the rest of ``main``'s
    decay compressed into ``steps`` optimizer steps (:func:`~taso_tune.schedules.maths.cooldown_lr`).

    It sets every param group's lr on construction (the branch's first step) and after each
    ``step()``; it keeps no state worth saving (a branch is never checkpointed) and leaves ``main``
    untouched, so the main run's schedule goes on from where it was once the branch is thrown away.
    """

    granularity: Granularity = "step"

    def __init__(self, optimizer: torch.optim.Optimizer, main: ScheduledLR, steps: int) -> None:
        self.optimizer, self.main = optimizer, main
        self.steps = check_integer("steps", steps, 1)
        self.update = main.current_update()
        self.done = 0
        self._apply()

    def _apply(self) -> None:
        for group, base in zip(self.optimizer.param_groups, self.main.base_lrs, strict=True):
            group["lr"] = cooldown_lr(
                self.main.schedule,
                self.done,
                self.steps,
                update=self.update,
                total_updates=self.main.total_updates,
                lr_initial=base,
                **self.main.params,
            )

    def step(self) -> None:
        self.done += 1
        self._apply()
