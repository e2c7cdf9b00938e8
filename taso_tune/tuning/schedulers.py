"""The Ray Tune trial scheduler of a space's ``scheduler:`` section (``budget-sh`` is not one: it is
a sequence of Tuner runs, see :mod:`taso_tune.tuning.budget_sh`)."""

from __future__ import annotations

import math
from typing import Any

from ray.tune.experiment import Trial
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


class TopK(FIFOScheduler):
    """Keep the best ``keep`` of ``trials`` trials after ``rung`` epochs of their real run.

    A trial that reports epoch ``rung`` is paused there (its report carries a checkpoint:
    :meth:`~taso_tune.spaces.sections.SchedulerSpec.checkpoint_epochs`) and no trial goes past the
    rung until every one of the ``trials`` planned has reached it or ended before it (diverged,
    failed for good: counted, never kept). Then the best ``keep`` at the rung (equal scores: the
    earlier trial id) resume from their checkpoints and the others are stopped. A trial Ray Tune
    retries is not counted until its retry reaches the rung or ends.

    The scores live in the trials' own last results, which Ray Tune keeps in the experiment's
    state: a restored driver, whose scheduler starts empty, reads them back in :meth:`on_trial_add`
    and keeps the same trials (unless the restore retries a trial that had failed for good, which
    then competes for a place).
    """

    def __init__(self, *, rung: int, keep: int, trials: int) -> None:
        super().__init__()
        self._sign = 1.0  # the sweep's mode, from set_search_properties
        self._rung, self._keep, self._trials = rung, keep, trials
        self._scores: dict[str, float] = {}  # trial id -> score at the rung, higher is better
        self._ended: set[str] = set()  # trials that ended before the rung
        self._past_rung: set[str] = set()  # restored trials that had already gone past the rung
        self._added: set[str] = set()
        self._kept: set[str] | None = None

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        """The sweep's metric and mode, which the Tuner passes on."""
        if mode:
            self._sign = 1.0 if mode == "max" else -1.0
        return super().set_search_properties(metric, mode, **spec)

    def _counted(self, trial: Trial) -> bool:
        return any(trial.trial_id in s for s in (self._scores, self._ended, self._past_rung))

    def _counted_trials(self) -> int:
        """Trials at the rung, past it, or ended before it."""
        return len(self._scores) + len(self._ended) + len(self._past_rung)

    def _at_rung(self, trial: Trial, result: dict) -> None:
        value = result.get(self._metric)
        score = -math.inf if value is None or math.isnan(value) else self._sign * float(value)
        self._scores.setdefault(trial.trial_id, score)

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        if trial.trial_id in self._added:  # Ray Tune adds a trial it retries again
            return
        self._added.add(trial.trial_id)
        epoch = trial.last_result.get("epoch") if trial.last_result else None
        if epoch is not None and epoch > self._rung:
            self._past_rung.add(trial.trial_id)
        elif epoch == self._rung:
            self._at_rung(trial, trial.last_result)
            if trial.status == Trial.PENDING:
                # restored while it waited at the rung: Ray Tune starts every pending trial it
                # can, a paused one only when this scheduler chooses it (set before Tune files
                # the trial under its status)
                trial.set_status(Trial.PAUSED)
        elif trial.status in (Trial.TERMINATED, Trial.ERROR):
            self._ended.add(trial.trial_id)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        epoch = result.get("epoch")
        if epoch is None or epoch < self._rung or trial.trial_id in self._past_rung:
            return TrialScheduler.CONTINUE
        self._at_rung(trial, result)  # past it only where a retry restored a later checkpoint
        self._decide(tune_controller)
        if self._kept is None:
            return TrialScheduler.PAUSE
        return TrialScheduler.CONTINUE if trial.trial_id in self._kept else TrialScheduler.STOP

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        if not self._counted(trial):  # ended before the rung
            self._ended.add(trial.trial_id)
            self._decide(tune_controller)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        if trial.status == Trial.ERROR:  # Ray Tune retries it: it is added again, and counts then
            return
        if not self._counted(trial):
            self._ended.add(trial.trial_id)
            self._decide(tune_controller)

    def _decide(self, tune_controller: Any) -> None:
        """Once every planned trial is counted: keep the best, stop the others that wait."""
        if self._kept is None and self._counted_trials() >= self._trials:
            ranked = sorted(self._scores, key=lambda trial_id: (-self._scores[trial_id], trial_id))
            self._kept = set(ranked[: max(0, self._keep - len(self._past_rung))])
        if self._kept is None:
            return
        for trial in tune_controller.get_trials():
            waiting = trial.status in (Trial.PENDING, Trial.PAUSED)
            if waiting and trial.trial_id in self._scores and trial.trial_id not in self._kept:
                _stop_waiting(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        self._decide(tune_controller)  # a restored driver decides once all trials are added
        waiting = [
            t for t in tune_controller.get_trials() if t.status in (Trial.PENDING, Trial.PAUSED)
        ]
        # trials still on their way to the rung first, then (once decided) the kept ones
        return next(
            (t for t in waiting if t.trial_id not in self._scores),
            next((t for t in waiting if t.trial_id in (self._kept or ())), None),
        )

    def debug_string(self) -> str:
        if self._kept is None:
            return (
                f"top-k: {self._counted_trials()} of {self._trials} trials at epoch {self._rung} "
                "or ended"
            )
        return f"top-k: kept {self._keep} of {self._trials} at epoch {self._rung}"


def _stop_waiting(tune_controller: Any, trial: Trial) -> None:
    """Stop a paused or pending trial, and have its new status saved: Ray Tune's ``stop_trial``
    marks only a trial with a live actor for the experiment's state, so a trial stopped while it
    waited would be read back, and resumed, as still paused (checked by ``tests/test_top_k.py``)."""
    tune_controller.stop_trial(trial)
    controller = getattr(tune_controller, "_tune_controller", tune_controller)  # Tune's wrapper
    mark = getattr(controller, "_mark_trial_to_checkpoint", None)
    if mark is not None:  # a Ray Tune without it: the test of the saved status says so
        mark(trial)


def build_scheduler(spec: SweepSpec, trials: int) -> TrialScheduler:
    """ASHA on epochs (one bracket, ``grace_period``, ``reduction_factor``), ASHA on cooldown
    branches for ``cooldown-asha``, :class:`TopK` of the ``trials`` planned for ``top-k``, or FIFO
    for ``none``."""
    kind = spec.scheduler.type
    if kind == "top-k":
        return TopK(
            rung=spec.scheduler.grace_period,
            keep=spec.scheduler.kept(trials),
            trials=trials,
        )
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
