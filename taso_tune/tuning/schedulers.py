"""The Ray Tune trial scheduler of a space's ``scheduler:`` section (``budget-sh`` is not one: it is
a sequence of Tuner runs, see :mod:`taso_tune.tuning.budget_sh`)."""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from taso_tune.core.errors import ConfigError
from taso_tune.spaces import SweepSpec


def build_scheduler(spec: SweepSpec) -> TrialScheduler:
    """ASHA on epochs (one bracket, ``grace_period``, ``reduction_factor``), or FIFO for ``none``."""
    kind = spec.scheduler.type
    if kind == "asha":
        return ASHAScheduler(
            time_attr="epoch",
            max_t=spec.epochs,
            grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor,
            brackets=1,
        )
    if kind == "none":
        return FIFOScheduler()
    raise ConfigError("scheduler.type", kind, "is run by the budget-sh runner, not by one Tuner")
