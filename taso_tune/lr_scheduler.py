"""Torch adapters: ``LRScheduler`` subclasses that evaluate the pure schedules in ``schedules.py``.

The scheduler stores only plain values (schedule name, its parameters, the step count), so
``state_dict()`` / ``load_state_dict()`` restore it exactly, and it is safe under
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from taso_tune.errors import ConfigError
from taso_tune.schedules import check_taso_params, get_schedule


class ScheduledLR(LRScheduler):
    """Drive each param group's lr by a named schedule of 1-based (possibly fractional) epochs.

    Per epoch (default, as in the paper): call ``step()`` once after each epoch; during epoch k the
    lr is ``schedule(k, total_epochs, lr_initial=<group's initial lr>, **params)``. Per step: pass
    ``steps_per_epoch`` and call ``step()`` after every optimizer step; the epoch argument is then
    ``(global_step + 1) / steps_per_epoch``, reaching exactly ``total_epochs`` at the last step.
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
        if total_epochs < 1:
            raise ConfigError("total_epochs", total_epochs, "must be >= 1")
        if steps_per_epoch is not None and steps_per_epoch < 1:
            raise ConfigError("steps_per_epoch", steps_per_epoch, "must be >= 1")
        self.schedule = schedule
        self.total_epochs = int(total_epochs)
        self.steps_per_epoch = steps_per_epoch
        self.params = dict(params)
        for group in optimizer.param_groups:
            # validate every group's values now rather than at the first step
            get_schedule(schedule)(1, self.total_epochs, lr_initial=group["lr"], **self.params)
        super().__init__(optimizer, last_epoch)

    def current_epoch(self) -> float:
        """The (1-based, possibly fractional) epoch the schedule is evaluated at now."""
        if self.steps_per_epoch is None:
            return float(self.last_epoch + 1)
        return (self.last_epoch + 1) / self.steps_per_epoch

    def get_lr(self) -> list[float]:
        fn = get_schedule(self.schedule)
        k = self.current_epoch()
        return [fn(k, self.total_epochs, lr_initial=base, **self.params) for base in self.base_lrs]

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
        alpha: float = 25.0,
        beta: float = 0.7,
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
