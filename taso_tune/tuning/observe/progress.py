"""Progress a person can read while a sweep runs, beside Ray Tune's table.

A line for each trial that ends (complete, stopped early by the scheduler, diverged, errored) and a
line with the trials done of those planned, the trial-epochs done of those planned and an estimate of
the time left. :class:`SweepProgress` is the bookkeeping (no Ray, testable on its own);
:class:`ProgressCallback` feeds it Ray Tune's trials after every step of the Tuner loop.
:class:`StatusTable` is Ray Tune's own status table, whose line on the best trial so far names the
trial (Ray's names its id).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO, cast

from ray.tune import Callback, CLIReporter

from taso_tune.core.records import TrialReport

#: Seconds between two progress lines while no trial ends.
STATUS_EVERY_S = 30.0


@dataclass(frozen=True)
class TrialView:
    """What the progress lines need of a trial: its name, Tune status and last report (the means
    over its seeds are the report's own: nothing is averaged again here)."""

    name: str
    status: str  # Ray Tune's: PENDING, RUNNING, PAUSED, TERMINATED, ERROR
    last: TrialReport  # empty before the trial's first report


def format_duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``42s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _seeds(last: TrialReport) -> str:
    count = len(last.get("seeds") or [])
    return f"{count} seed" if count == 1 else f"{count} seeds"


def _score(last: TrialReport, metric: str) -> str:
    """``val_acc 0.9312 ± 0.0040 over 3 seeds``, or ``""`` while the trial has no finite score."""
    value = last.get(metric)
    if not isinstance(value, int | float) or not math.isfinite(value):
        return ""
    std = last.get(f"{metric}_std")
    spread = f" ± {std:.4f}" if isinstance(std, int | float) and math.isfinite(std) else ""
    return f"{metric} {value:.4f}{spread} over {_seeds(last)}"


def best_trial_line(trial: TrialView, metric: str) -> str:
    """The status table's line on the best trial so far: its name, score and epoch."""
    last = trial.last
    epoch = int(last.get("epoch", 0))
    planned = last.get("planned_epochs")
    at = f"epoch {epoch}/{planned}" if planned else f"epoch {epoch}"
    return (
        f"Current best trial: {trial.name}, {_score(last, metric) or metric + ' none yet'} at {at}"
    )


class SweepProgress:
    """Counts a sweep's trials and trial-epochs; ``update(trials)`` returns the lines to print.

    A trial that ends before its planned epochs (stopped by ASHA) counts only the epochs it ran, so
    the plan shrinks as the scheduler stops trials; the time left is the wall time per trial-epoch
    trained so far (by this driver: a resumed sweep's earlier epochs do not count) times the
    trial-epochs still planned.
    """

    def __init__(
        self,
        planned_trials: int,
        epochs_per_trial: int,
        metric: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.planned_trials = planned_trials
        self.epochs_per_trial = epochs_per_trial
        self.metric = metric
        self.clock = clock
        self.restart()

    def restart(self) -> None:
        """Start counting afresh: the elapsed time and the new epochs are this driver's own."""
        self.start = self.clock()
        self.last_status = self.start
        self.ended: set[str] = set()
        self.first_epochs: dict[str, int] = {}  # epochs a trial had when first seen (a resume)

    def update(self, trials: Iterable[TrialView]) -> list[str]:
        trials = list(trials)
        lines = []
        for trial in trials:
            ended = trial.status in ("TERMINATED", "ERROR")
            if trial.name not in self.first_epochs:
                self.first_epochs[trial.name] = int(trial.last.get("epoch", 0))
                if ended:  # it ended before this driver started (a resumed sweep): no news
                    self.ended.add(trial.name)
            if ended and trial.name not in self.ended:
                self.ended.add(trial.name)
                lines.append(self.trial_line(trial))
        now = self.clock()
        if lines or now - self.last_status >= STATUS_EVERY_S:
            self.last_status = now
            lines.append(self.status_line(trials, now))
        return lines

    def trial_line(self, trial: TrialView) -> str:
        last = trial.last
        epoch = int(last.get("epoch", 0))
        planned = int(last.get("planned_epochs", self.epochs_per_trial))
        if trial.status == "ERROR":
            how = f"errored at epoch {epoch}/{planned}"
        elif last.get("diverged"):
            how = f"diverged at epoch {epoch}/{planned}"
        elif epoch < planned:
            how = f"stopped early by the scheduler at epoch {epoch}/{planned}"
        else:
            how = f"complete, {epoch}/{planned} epochs"
        score = _score(last, self.metric)
        return f"trial {trial.name} {how}{': ' + score if score else ''}"

    def status_line(self, trials: list[TrialView], now: float) -> str:
        done = [t for t in trials if t.status in ("TERMINATED", "ERROR")]
        epochs_done = sum(int(t.last.get("epoch", 0)) for t in trials)
        # an ended trial needs no more epochs; every other trial (or one not created yet) its plan
        planned = sum(int(t.last.get("epoch", 0)) for t in done) + self.epochs_per_trial * (
            self.planned_trials - len(done)
        )
        new_epochs = epochs_done - sum(self.first_epochs.get(t.name, 0) for t in trials)
        elapsed = now - self.start
        if new_epochs > 0 and planned > epochs_done:
            left = f"about {format_duration(elapsed / new_epochs * (planned - epochs_done))} left"
        elif planned <= epochs_done:
            left = "done"
        else:
            left = "time left unknown yet"
        return (
            f"progress: {len(done)}/{self.planned_trials} trials done, {epochs_done}/{planned} "
            f"trial-epochs, {format_duration(elapsed)} elapsed, {left}"
        )


class ProgressCallback(Callback):
    """Prints :class:`SweepProgress` lines from the Tuner loop (driver side)."""

    def __init__(self, progress: SweepProgress, out: TextIO | None = None) -> None:
        self.progress = progress
        self.out = out

    def setup(self, **info: Any) -> None:
        # a resumed sweep restores this callback from the Tuner's saved state: count from now
        self.progress.restart()

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        lines = self.progress.update(_view(t) for t in trials)
        if lines:
            out = self.out or sys.stdout
            out.write("".join(f"{line}\n" for line in lines))
            out.flush()


def _view(trial: Any) -> TrialView:
    """What the progress lines need of one of Ray Tune's trials (its ``str`` is its name)."""
    return TrialView(str(trial), trial.status, cast(TrialReport, trial.last_result or {}))


class StatusTable(CLIReporter):
    """Ray Tune's status table (a row per trial, named after it), whose line on the best trial so
    far names the trial and its score over its seeds (:func:`best_trial_line`) where Ray's own names
    the trial's id and its config (two private methods of Ray's reporter: ray is pinned to 2.60)."""

    def _current_best_trial(self, trials: list) -> tuple[Any, Any]:
        # Ray prints its line on the trial this returns: none, ours goes in _progress_str instead
        return None, None

    def _progress_str(self, trials: list, done: bool, *sys_info: str, **kwargs: Any) -> str:
        best, metric = super()._current_best_trial(trials)
        if best is not None:
            sys_info = (*sys_info, best_trial_line(_view(best), metric))
        return super()._progress_str(trials, done, *sys_info, **kwargs)
