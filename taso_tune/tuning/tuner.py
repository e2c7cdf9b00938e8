"""The one way every run of a sweep gets its Ray Tune ``Tuner`` (a sweep, a budget-sh rung, a
resume): :func:`build_tuner`, new or restored from the state saved in its folder.

The trainable is :class:`~taso_tune.tuning.trainable.TrialActor` with the sweep's data sets in Ray's
object store (``tune.with_parameters``: loaded once in the driver, shared with every trial) and each
trial's CPUs and GPUs attached.
"""

from __future__ import annotations

from collections.abc import Mapping

from ray import tune

from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import first_line, tune_filesystem
from taso_tune.training.data.sets import ImageData
from taso_tune.tuning.actors import actor_policy
from taso_tune.tuning.paths import experiment_path
from taso_tune.tuning.resources import trial_resources
from taso_tune.tuning.trainable import DataKey, TrialActor
from taso_tune.tuning.trials import TrialSource
from taso_tune.tuning.tune_settings import run_config, tune_config


def build_trainable(
    source: TrialSource, datasets: Mapping[DataKey, ImageData], name: str, reuse_actors: bool
):
    """:class:`TrialActor` with the data in the object store and the trial's resources attached;
    ``name``, the experiment's, labels its gauges and names a reused actor."""
    spec = source.spec
    resources = trial_resources(source)
    actor = tune.with_parameters(
        TrialActor,
        datasets=dict(datasets),
        experiment=name,
        checkpoint_every=spec.checkpoint_every,
        checkpoint_min_seconds=spec.checkpoint_min_seconds,
        seed_packing=spec.seed_packing,
        cooldowns=spec.scheduler.cooldown_plan(spec.epochs),
        checkpoint_epochs=spec.scheduler.checkpoint_epochs(),
        reuse_actors=reuse_actors,
        cpus=resources["cpu"],
        device="cuda" if resources["gpu"] > 0 else "cpu",
        source=source,
    )
    trainable = tune.with_resources(actor, resources)
    # Ray names an actor's class by its qualified name; Tune's wrappers are local classes
    trainable.__qualname__ = trainable.__name__ = TrialActor.__name__
    return trainable


def build_tuner(
    source: TrialSource,
    datasets: Mapping[DataKey, ImageData],
    storage: str,
    name: str,
    *,
    restore: bool = False,
    label: str | None = None,
) -> tune.Tuner:
    """The Tuner of ``source``'s trials, writing to ``STORAGE/NAME``; ``label``: the experiment's
    name where ``NAME`` is one of its runs (a budget-sh rung, the rerun of lost trials), for the
    trials' gauges and actor names, which would otherwise collide between experiments.

    With ``restore`` and Ray Tune state saved in that folder, the run is restored: finished trials
    stay finished, unfinished ones continue from their last checkpoints and errored ones are retried
    from theirs; state Ray Tune cannot read is a :class:`ConfigError` naming the folder (nothing of
    the run has started then). Otherwise the run is new.
    """
    path = experiment_path(storage, name)
    policy = actor_policy(source, datasets)
    print(f"{name}: {policy.why}", flush=True)
    trainable = build_trainable(source, datasets, label or name, policy.reuse)
    param_space = source.param_space()
    if restore and tune.Tuner.can_restore(path):
        try:
            return tune.Tuner.restore(
                path,
                trainable,
                resume_unfinished=True,
                resume_errored=True,
                param_space=param_space,
                storage_filesystem=tune_filesystem(path),
            )
        except Exception as err:  # a truncated or foreign tuner.pkl
            raise ConfigError(
                "experiment",
                path,
                f"Ray Tune cannot restore it: {type(err).__name__}: {first_line(err)}",
            ) from None
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune_config(source, policy.reuse),
        run_config=run_config(source, name, storage),
    )
