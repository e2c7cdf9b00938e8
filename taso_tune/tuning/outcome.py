"""What a sweep tells its caller when it ends: where its results are and how it went."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ray import tune


@dataclass(frozen=True)
class SweepOutcome:
    """Where a sweep is and how it went: ``interrupted`` is the signal that stopped it (``None``:
    it ran to the end), ``planned`` the trials it was to run and ``finished`` those that did (0
    where not counted)."""

    experiment_path: str
    trials: int
    errored: int
    wall_seconds: float
    planned: int = 0
    interrupted: int | None = None
    finished: int = 0
    storage_fault: str | None = None


def outcome(path: str, results: tune.ResultGrid, start: float, planned: int = 0) -> SweepOutcome:
    """The outcome of the Tune run at ``path`` that began at ``start`` (``time.perf_counter()``)."""
    return SweepOutcome(
        path, len(results), results.num_errors, time.perf_counter() - start, planned
    )
