"""How a trial packs its seeds, and the one place that builds them: :func:`resolve_packing` decides,
:func:`seed_training` builds the :class:`~taso_tune.training.seeds.SeedTraining` a trial trains.

``seed_packing`` is ``separate`` (:class:`~taso_tune.training.seeds.SeedRuns`: one run a seed, one
after another each epoch), ``stacked`` (:class:`~taso_tune.training.stacked.StackedRuns`: the seeds
as one model under ``torch.func.vmap``) or ``auto``. ``auto`` must never break a trial nor slow it
down: it stacks only on CUDA (on the CPU the batched kernels are no faster than k runs,
docs/benchmarks.md), only the models in :data:`STACKED_ON_CUDA`, and never with ``compile: true``,
which the stack does not support.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import SEED_PACKINGS
from taso_tune.training.data.sets import ImageData
from taso_tune.training.device import resolve_device
from taso_tune.training.run import TrainConfig
from taso_tune.training.seeds import Packing, SeedRuns, SeedTraining
from taso_tune.training.stacked import StackedRuns

#: The models ``auto`` stacks on CUDA. Stacking on a GPU has not been measured faster for any model
#: yet; LeNet5 has no BatchNorm and no adaptive pooling, the layers whose vmap rules add layout
#: copies or have no batching rule at all, so it stays stacked. VGG19 and ResNet18 train separate
#: under ``auto`` until a GPU measurement shows their stack is faster.
STACKED_ON_CUDA: frozenset[str] = frozenset({"lenet5"})


def resolve_packing(
    requested: str,
    device: torch.device,
    seeds: int,
    model: str = TrainConfig.model,
    compile: bool = False,
) -> Packing:
    """The packing a trial of ``seeds`` seeds of ``model`` on ``device`` uses when ``requested``.

    One seed is always separate. ``stacked`` and ``separate`` are taken as asked (``stacked`` with
    ``compile`` is refused when the stack is built, and before Ray starts by the space's
    validation). ``auto`` is stacked only on CUDA, for a model in :data:`STACKED_ON_CUDA`, without
    ``compile``; separate otherwise.
    """
    if requested not in SEED_PACKINGS:
        raise ConfigError(
            "seed_packing", requested, "unknown seed packing", choices=list(SEED_PACKINGS)
        )
    if seeds < 2:
        return "separate"
    if requested == "auto":
        stacks = device.type == "cuda" and model in STACKED_ON_CUDA and not compile
        return "stacked" if stacks else "separate"
    return requested  # type: ignore[return-value]


def seed_training(
    config: TrainConfig,
    seeds: Sequence[int],
    data: ImageData | None = None,
    state: Mapping[str, Any] | None = None,
    *,
    packing: str = "auto",
) -> SeedTraining:
    """The seeds of ``config`` packed as :func:`resolve_packing` decides for ``packing``, resumed
    from ``state`` (a ``state_dict()`` of the same packing and seeds) when given."""
    resolved = resolve_packing(
        packing,
        resolve_device(config.device),
        len(seeds),
        model=config.model,
        compile=config.compile,
    )
    runs = StackedRuns if resolved == "stacked" else SeedRuns
    return runs(config, seeds, data, state)
