"""taso-tune: hyperparameter search on Ray Tune around the Training Aware Sigmoidal Optimizer (TASO).

The packages are the layers, bottom up, each importing only the ones below it: ``core`` (errors,
records, checks, storage) -> ``schedules`` (pure maths and its torch adapter), ``stats`` ->
``training`` (models, optimizers, data, the training loop, a trial's seeds) -> ``spaces`` ->
``experiment`` (one experiment folder) -> ``tuning`` and ``cluster`` (the Ray layer) -> ``results``
(report, export, studies) -> ``api`` (:func:`sweep`, for notebooks and scripts) -> ``cli``.
"""

__version__ = "0.1.0"

from taso_tune.schedules.maths import taso_lr  # noqa: E402

__all__ = ["TASO", "SweepResult", "sweep", "taso_lr", "__version__"]


def __getattr__(name: str):
    # TASO needs torch and sweep needs Ray: keep `import taso_tune` light for the pure-maths layer
    if name == "TASO":
        from taso_tune.schedules.lr_scheduler import TASO

        return TASO
    if name in ("sweep", "SweepResult"):
        from taso_tune import api

        return getattr(api, name)
    raise AttributeError(name)
