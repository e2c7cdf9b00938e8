"""From a validated space's blocks to its configurations: grid expansion, random draws, readable
ids, and how many there are. It sits below :mod:`~taso_tune.spaces.spec`, which asks it for its
configurations; Optuna's define-by-run space is in :mod:`~taso_tune.spaces.optuna_space`.

A configuration is one flat training dict (``train`` fields, the block's values, ``config_id`` and
``block``); a trial of the grid adds ``seed``. Nothing here imports Ray or Optuna.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from taso_tune.core.errors import ConfigError
from taso_tune.spaces.counting import counted
from taso_tune.spaces.sections import SearchSpec
from taso_tune.spaces.validation import TRAIN_FIELDS, Block
from taso_tune.spaces.values import format_value


def configurations(
    blocks: Sequence[Block],
    train: Mapping[str, Any],
    search: SearchSpec,
    source: str | None = None,
) -> list[dict[str, Any]]:
    """Every configuration (before seeds) of a space's ``blocks`` as one flat training dict with
    ``config_id`` and ``block``; ``source`` is the space's file, named in errors.

    Blocks in file order; inside a block, the grid in row-major order of its keys as written.
    Random search draws ``num_samples`` configurations per grid point (one when the block has
    nothing to draw) from a generator seeded with (``search.seed``, block index).
    """
    if search.type == "optuna":
        raise ConfigError(
            "search.type",
            "optuna",
            "has no list of configurations: Optuna proposes "
            "them during the sweep (see optuna_space())",
            file=source,
        )
    rows: list[tuple[int, dict[str, Any]]] = []
    for i, block in enumerate(blocks):
        gridded = [k for k, v in block.items() if v.kind == "grid"]
        drawn = [k for k, v in block.items() if v.varied and v.kind != "grid"]
        rng = np.random.default_rng([search.seed, i])
        draws = search.num_samples if drawn else 1
        combos = itertools.product(*(block[k].options for k in gridded))
        size = math.prod(len(block[k].options) for k in gridded)
        for combo in counted(combos, size, f"expanding block {i} of the space"):
            point = dict(zip(gridded, combo, strict=True))
            for _ in range(draws):
                values = {**point, **{k: block[k].sample(rng) for k in drawn}}
                rows.append((i, flat_config(train, block, values)))
    ids = [config_id(blocks[i], flat) for i, flat in rows]
    shared = Counter(ids)
    # blocks of one optimizer that differ in a fixed field (e.g. momentum) name that field too
    ids = [
        config_id(blocks[i], flat, with_fixed=True) if shared[cid] > 1 else cid
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


class SpaceSize(Protocol):
    """What counting a space's trials reads of it (a :class:`~taso_tune.spaces.SweepSpec` is one)."""

    @property
    def blocks(self) -> Sequence[Block]: ...

    @property
    def seeds(self) -> int: ...

    @property
    def search(self) -> SearchSpec: ...


def count_trials(spec: SpaceSize) -> int:
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
