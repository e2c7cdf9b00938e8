"""From a validated space to its configurations: grid expansion, random draws, readable ids, and
Optuna's define-by-run space (a class, not a closure, so Ray can pickle it).

A configuration is one flat training dict (``train`` fields, the block's values, ``config_id`` and
``block``); a trial of the grid adds ``seed``. Nothing here imports Ray or Optuna.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from taso_tune.core.errors import ConfigError
from taso_tune.spaces.counting import counted
from taso_tune.spaces.validation import TRAIN_FIELDS, Block
from taso_tune.spaces.values import format_value, is_int

if TYPE_CHECKING:
    from taso_tune.spaces.spec import SweepSpec


def configurations(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every configuration (before seeds) as one flat training dict with ``config_id`` and ``block``.

    Blocks in file order; inside a block, the grid in row-major order of its keys as written.
    Random search draws ``num_samples`` configurations per grid point (one when the block has
    nothing to draw) from a generator seeded with (``search.seed``, block index).
    """
    if spec.search.type == "optuna":
        raise ConfigError(
            "search.type",
            "optuna",
            "has no list of configurations: Optuna proposes "
            "them during the sweep (see optuna_space())",
            file=spec.source,
        )
    rows: list[tuple[int, dict[str, Any]]] = []
    for i, block in enumerate(spec.blocks):
        gridded = [k for k, v in block.items() if v.kind == "grid"]
        drawn = [k for k, v in block.items() if v.varied and v.kind != "grid"]
        rng = np.random.default_rng([spec.search.seed, i])
        draws = spec.search.num_samples if drawn else 1
        combos = itertools.product(*(block[k].options for k in gridded))
        size = math.prod(len(block[k].options) for k in gridded)
        for combo in counted(combos, size, f"expanding block {i} of the space"):
            point = dict(zip(gridded, combo, strict=True))
            for _ in range(draws):
                values = {**point, **{k: block[k].sample(rng) for k in drawn}}
                rows.append((i, flat_config(spec.train, block, values)))
    ids = [config_id(spec.blocks[i], flat) for i, flat in rows]
    shared = Counter(ids)
    # blocks of one optimizer that differ in a fixed field (e.g. momentum) name that field too
    ids = [
        config_id(spec.blocks[i], flat, with_fixed=True) if shared[cid] > 1 else cid
        for (i, flat), cid in zip(rows, ids, strict=True)
    ]
    ids = _unique_ids(list(zip((i for i, _ in rows), ids, strict=True)))
    return [
        {**flat, "config_id": cid, "block": i} for (i, flat), cid in zip(rows, ids, strict=True)
    ]


def count_configurations(blocks: Sequence[Block], num_samples: int = 1) -> int:
    """How many configurations :func:`configurations` makes of ``blocks``, without making them: per
    block the product of its grid sizes, times ``num_samples`` when it draws from distributions."""
    total = 0
    for block in blocks:
        grid = math.prod(len(v.options) for v in block.values() if v.kind == "grid")
        drawn = any(v.varied and v.kind != "grid" for v in block.values())
        total += grid * (num_samples if drawn else 1)
    return total


def count_trials(spec: SweepSpec) -> int:
    """The trials of a sweep of ``spec`` before any early stopping: configurations x seeds (Optuna:
    its proposals x seeds). Budget-aware successive halving runs more: see the Ray layer."""
    if spec.search.type == "optuna":
        return spec.search.num_samples * spec.seeds
    return count_configurations(spec.blocks, spec.search.num_samples) * spec.seeds


def flat_config(
    train: Mapping[str, Any], block: Block, chosen: Mapping[str, Any]
) -> dict[str, Any]:
    """``train`` with the block's fixed values and the ``chosen`` values of its varied fields."""
    values = {k: chosen[k] if v.varied else v.fixed for k, v in block.items()}
    return copy.deepcopy({**train, **values})


def config_id(block: Block, flat: Mapping[str, Any], with_fixed: bool = False) -> str:
    """``optimizer_field=value_...`` over the block's varied fields (and its fixed optimizer fields)."""
    parts = [format_value(flat["optimizer"])]
    parts += [
        f"{k}={format_value(flat[k])}" for k, v in block.items() if v.varied and k != "optimizer"
    ]
    if with_fixed:
        parts += [
            f"{k}={format_value(flat[k])}"
            for k, v in block.items()
            if not v.varied and k != "optimizer" and k not in TRAIN_FIELDS
        ]
    return "_".join(parts)


def _unique_ids(labelled: list[tuple[int, str]]) -> list[str]:
    """Append ``_b<block>`` to ids several configurations share, then a counter if still shared."""
    counts = Counter(cid for _, cid in labelled)
    ids = [f"{cid}_b{i}" if counts[cid] > 1 else cid for i, cid in labelled]
    counts, seen = Counter(ids), Counter()
    unique = []
    for cid in ids:
        seen[cid] += 1
        unique.append(f"{cid}_{seen[cid]}" if counts[cid] > 1 else cid)
    return unique


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
