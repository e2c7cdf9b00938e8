"""Optuna's define-by-run space of a :class:`~taso_tune.spaces.spec.SweepSpec` (a class, not a
closure, so Ray can pickle it), and a trial's suggested parameters back as the flat configuration a
grid trial carries. Nothing here imports Optuna: the trial object is passed in.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from taso_tune.core.errors import ConfigError
from taso_tune.spaces.expansion import config_id, flat_config
from taso_tune.spaces.spec import SweepSpec
from taso_tune.spaces.values import is_int


class OptunaSpace:
    """The define-by-run function of a spec for ``OptunaSearch(space=...)``.

    Given an Optuna trial it picks a block (``"block"``, when there are several), suggests that
    block's varied fields as ``"b<i>.<field>"`` (grid and choice: categorical; uniform and
    loguniform: floats) and returns the constant part (train fields and the block's fixed values).
    """

    def __init__(self, spec: SweepSpec) -> None:
        if spec.search.type != "optuna":
            raise ConfigError(
                "search.type",
                spec.search.type,
                "an Optuna space needs search: optuna",
                file=spec.source,
            )
        self.spec = spec

    def __call__(self, trial: Any) -> dict[str, Any]:
        blocks = self.spec.blocks
        index = (
            trial.suggest_categorical("block", list(range(len(blocks)))) if len(blocks) > 1 else 0
        )
        constant: dict[str, Any] = dict(self.spec.train)
        for key, value in blocks[index].items():
            name = f"b{index}.{key}"
            if value.kind in ("grid", "choice"):
                trial.suggest_categorical(name, list(value.options))
            elif value.is_distribution:
                low, high = value.options
                trial.suggest_float(name, float(low), float(high), log=value.kind == "loguniform")
            else:
                constant[key] = copy.deepcopy(value.fixed)
        if len(blocks) == 1:
            constant["block"] = 0
        return constant


def resolve_optuna_params(spec: SweepSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a trial's suggested params (``{"block": 0, "b0.lr": 0.01, ...}``; other keys are
    ignored) into the flat training dict :func:`configurations` would give, with ``config_id``
    and ``block``. ``config_id`` ends in ``_b<i>`` when another block shares the optimizer."""
    blocks = spec.blocks
    index = params.get("block", 0)
    if not is_int(index) or not 0 <= index < len(blocks):
        raise ConfigError(
            "block",
            index,
            "not a block of this space",
            choices=range(len(blocks)),
            file=spec.source,
        )
    block = blocks[index]
    chosen = {}
    for key, value in block.items():
        if value.varied:
            name = f"b{index}.{key}"
            if name not in params:
                raise ConfigError(
                    name, None, "missing from the suggested parameters", file=spec.source
                )
            chosen[key] = params[name]
    flat = flat_config(spec.train, block, chosen)
    cid = config_id(block, flat)
    others = {n for j, b in enumerate(blocks) if j != index for n in b["optimizer"].options}
    if flat["optimizer"] in others:
        cid += f"_b{index}"
    return {**flat, "config_id": cid, "block": index}
