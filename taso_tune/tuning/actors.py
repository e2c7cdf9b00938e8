"""Whether a sweep's trials share actor processes (the space's ``reuse_actors``).

A trial in an actor of its own is named after the trial in the Ray dashboard's Actors view, and costs
a trial slot a new worker process: on two CPU cores about 3.0 s while Ray starts it and it imports
torch, Ray Tune and the trainable, then 1.3 s to set up its first trial, against 0.02 s for a trial
in an actor that ran one before (``docs/benchmarks.md``, section 2). Reused actors run trial after
trial in the same processes; the dashboard names them after the experiment and their log lines after
each trial.

``reuse_actors: auto`` (the default) decides by how much a trial plans to train: the images of its
training split times its epochs times the seeds it holds. Under :data:`SHORT_TRIAL_IMAGES` the
trials are short enough that a new process each would cost a large share of their time, and actors
are reused; from there on one actor per trial costs a few percent at most (LeNet5 trains about 8,000
images a second on one CPU thread here, so 1,000,000 images take about two minutes) and each trial
keeps its own entry in the dashboard. ``true`` and ``false`` choose without looking.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from taso_tune.training.data.sets import ImageData
from taso_tune.tuning.trainable import DataKey, data_key
from taso_tune.tuning.trials import TrialSource

#: Planned training images per trial under which ``reuse_actors: auto`` reuses actors.
SHORT_TRIAL_IMAGES = 1_000_000


@dataclass(frozen=True)
class ActorPolicy:
    """Whether trials reuse actors, and the sentence that says why."""

    reuse: bool
    why: str


def planned_images(source: TrialSource, datasets: Mapping[DataKey, ImageData]) -> int:
    """The most training images any trial of the sweep may pass through its model: the largest
    training split times the most epochs any configuration plans (a searcher may pick any) times
    the seeds a trial holds."""
    spec = source.spec
    seeds = 1 if spec.seeds_per_trial == 1 else len(spec.seed_values)
    train = max(datasets[data_key(flat)].sizes()["train"] for flat in source.fixed_configs())
    return train * spec.epochs * seeds


def actor_policy(source: TrialSource, datasets: Mapping[DataKey, ImageData]) -> ActorPolicy:
    """The sweep's ``reuse_actors``, with ``auto`` decided by :func:`planned_images`."""
    chosen = source.spec.reuse_actors
    if chosen is True:
        return ActorPolicy(True, "actors: reused between trials (reuse_actors: true)")
    if chosen is False:
        return ActorPolicy(False, "actors: one per trial (reuse_actors: false)")
    images = planned_images(source, datasets)
    if images < SHORT_TRIAL_IMAGES:
        return ActorPolicy(
            True,
            f"actors: reused between trials, which are short ({images:,} training images each, "
            f"under {SHORT_TRIAL_IMAGES:,}); reuse_actors: false gives each its own, named after it",
        )
    return ActorPolicy(
        False,
        f"actors: one per trial, named after it ({images:,} training images each, at least "
        f"{SHORT_TRIAL_IMAGES:,}); reuse_actors: true runs trial after trial in the same ones",
    )
