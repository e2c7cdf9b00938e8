"""The Ray Tune trial scheduler of a space's ``scheduler:`` section (``budget-sh`` is not one: it is
a sequence of Tuner runs, see :mod:`taso_tune.tuning.budget_sh`)."""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import COOLDOWN_PREFIX
from taso_tune.spaces import SweepSpec


class CooldownASHA(ASHAScheduler):
    """ASHA that judges a trial at a rung by its cooldown branches' score, not its un-decayed metric.

    A trial under ``scheduler: cooldown-asha`` adds ``cooldown_<metric>`` to its report of each rung
    epoch (:class:`~taso_tune.core.records.CooldownScores`); that score goes to ASHA's rung in place
    of ``<metric>``. A report without it is never judged (it only stops a trial at ``max_t``, as
    ASHA does): a trial resumed past a rung after a restart of the driver, whose new scheduler never
    saw it there, is not judged there on its un-decayed metric, but at its next rung.
    """

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if self._time_attr not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        branch = f"{COOLDOWN_PREFIX}{self._metric}"
        if branch in result:
            return super().on_trial_result(
                tune_controller, trial, {**result, self._metric: result[branch]}
            )
        if result[self._time_attr] >= self._max_t:
            return super().on_trial_result(tune_controller, trial, result)
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        """A trial that ends records its last report at a rung, as ASHA does, but only its branches'
        score or, at ``max_t``, its final metric: a trial that ends between rungs (diverged, or
        resumed past a rung this scheduler never saw) records nothing."""
        branch = f"{COOLDOWN_PREFIX}{self._metric}"
        if branch in result:
            result = {**result, self._metric: result[branch]}
        elif result.get(self._time_attr, 0) < self._max_t:
            self._trial_info.pop(trial.trial_id, None)
            return
        super().on_trial_complete(tune_controller, trial, result)


def build_scheduler(spec: SweepSpec) -> TrialScheduler:
    """ASHA on epochs (one bracket, ``grace_period``, ``reduction_factor``), ASHA on cooldown
    branches for ``cooldown-asha``, or FIFO for ``none``."""
    kind = spec.scheduler.type
    if kind in ("asha", "cooldown-asha"):
        scheduler = CooldownASHA if kind == "cooldown-asha" else ASHAScheduler
        return scheduler(
            time_attr="epoch",
            max_t=spec.epochs,
            grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor,
            brackets=1,
        )
    if kind == "none":
        return FIFOScheduler()
    raise ConfigError("scheduler.type", kind, "is run by the budget-sh runner, not by one Tuner")
