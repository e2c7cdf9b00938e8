"""taso-tune: hyperparameter search on Ray Tune around the Training Aware Sigmoidal Optimizer (TASO).

The library layers, bottom up: ``schedules`` (pure maths) -> ``lr_scheduler``, ``optimizers``,
``models``, ``data`` (torch pieces) -> ``train`` (the training loop) -> ``tuning`` (the Ray layer) ->
``results`` -> ``report``, ``export`` -> ``cli``.
"""

__version__ = "0.1.0"

from taso_tune.schedules import taso_lr  # noqa: E402

__all__ = ["TASO", "taso_lr", "__version__"]


def __getattr__(name: str):
    # TASO needs torch; keep `import taso_tune` light for the pure-maths layer
    if name == "TASO":
        from taso_tune.lr_scheduler import TASO

        return TASO
    raise AttributeError(name)
