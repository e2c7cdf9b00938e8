"""Validation of a space's training fields and blocks: every field checked once, where it enters.

:func:`validate_blocks` turns each block's YAML form into :class:`~taso_tune.spaces.values.Value`
objects and checks every configuration it can produce (grid points, and distributions at both ends)
through :meth:`TrainConfig.from_flat`, so a sweep that loads is a sweep whose every trial can start.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any

from taso_tune.core.errors import ConfigError
from taso_tune.spaces.counting import counted
from taso_tune.spaces.values import Value, did_you_mean, is_number, parse_value, require_int
from taso_tune.training.optimizers import OPTIMIZERS
from taso_tune.training.run import TrainConfig

#: TrainConfig fields a space may set, in ``train:`` or in a block (seeds come from ``seeds:``).
TRAIN_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(TrainConfig) if f.name not in ("hparams", "seed", "optimizer")
)
_BOOL_FIELDS = tuple(f.name for f in fields(TrainConfig) if f.type == "bool")

Block = dict[str, Value]


def validate_train(train: Any) -> dict[str, Any]:
    """The ``train:`` section: fixed values of known training fields (a deep copy)."""
    if not isinstance(train, Mapping):
        raise ConfigError("train", train, "must be a mapping of training fields")
    for key, value in train.items():
        if key == "seed":
            raise ConfigError("train.seed", value, "seeds come from the top-level `seeds:` key")
        if key == "optimizer":
            raise ConfigError("train.optimizer", value, "the optimizer is chosen in each block")
        if key not in TRAIN_FIELDS:
            raise ConfigError(
                f"train.{key}",
                value,
                f"unknown training field{did_you_mean(key, TRAIN_FIELDS)}",
                choices=TRAIN_FIELDS,
            )
        if isinstance(value, Mapping):
            raise ConfigError(
                f"train.{key}",
                dict(value),
                "train holds fixed values; put grids and distributions in a block",
            )
        check_train_value(f"train.{key}", key, value)
    return copy.deepcopy(dict(train))


def parse_blocks(blocks: Any, search: str) -> tuple[Block, ...]:
    """Each block's values parsed and checked one by one (blocks already parsed are kept)."""
    if not isinstance(blocks, (list, tuple)) or not blocks:
        raise ConfigError("blocks", blocks, "must be a non-empty list of blocks")
    return tuple(
        block if _is_parsed(block) else _parse_block(i, block, search)
        for i, block in enumerate(blocks)
    )


def validate_blocks(
    blocks: Any, train: Mapping[str, Any], search: str, metric: str
) -> tuple[Block, ...]:
    """Parse and check every block; every configuration it yields must build a TrainConfig."""
    parsed = parse_blocks(blocks, search)
    total = sum(count_points(block) for block in parsed)
    points = (
        (i, block, flat) for i, block in enumerate(parsed) for flat in check_points(block, train)
    )
    for i, block, flat in counted(points, total, "checking the space's configurations"):
        _check_config(i, block, train, flat, metric)
    return parsed


def count_points(block: Block) -> int:
    """How many configurations :func:`check_points` yields for ``block``, without making them."""
    listed = math.prod(len(v.options) for v in block.values() if v.kind in ("grid", "choice"))
    return listed * (2 if any(v.is_distribution for v in block.values()) else 1)


def _is_parsed(block: Any) -> bool:
    return (
        isinstance(block, Mapping)
        and bool(block)
        and all(isinstance(v, Value) for v in block.values())
    )


def _parse_block(i: int, block: Any, search: str) -> Block:
    where = f"blocks[{i}]"
    if not isinstance(block, Mapping):
        raise ConfigError(where, block, "a block is a mapping of field: value")
    if "optimizer" not in block:
        raise ConfigError(
            f"{where}.optimizer",
            None,
            "every block names its optimizer",
            choices=sorted(OPTIMIZERS),
        )
    values = {key: parse_value(f"{where}.{key}", raw) for key, raw in block.items()}
    optimizer = values["optimizer"]
    if optimizer.is_distribution:
        raise ConfigError(
            f"{where}.optimizer", optimizer.to_yaml(), "must be a name, a grid or a choice"
        )
    for name in optimizer.options:
        if not isinstance(name, str):
            raise ConfigError(
                f"{where}.optimizer", name, "must be an optimizer name", choices=sorted(OPTIMIZERS)
            )
        OPTIMIZERS.get_or_fail(name, f"{where}.optimizer")
    for key, value in values.items():
        path = f"{where}.{key}"
        if key == "seed":
            raise ConfigError(path, value.to_yaml(), "seeds come from the top-level `seeds:` key")
        if key != "optimizer" and key not in TRAIN_FIELDS:
            for name in optimizer.options:
                if key not in OPTIMIZERS[name].defaults:
                    valid = [*sorted(OPTIMIZERS[name].defaults), *TRAIN_FIELDS]
                    raise ConfigError(
                        path,
                        value.to_yaml(),
                        f"not a field of optimizer {name!r} nor a "
                        f"training field{did_you_mean(key, valid)}",
                        choices=valid,
                    )
        _check_value_kind(path, key, value, search)
    return values


def _check_value_kind(path: str, key: str, value: Value, search: str) -> None:
    if search == "grid" and value.kind not in ("fixed", "grid"):
        raise ConfigError(
            path,
            value.to_yaml(),
            f"a {value.kind} needs search: random or optuna "
            "(search: grid takes fixed values and grids)",
        )
    if value.is_distribution and key in TRAIN_FIELDS and key != "val_fraction":
        raise ConfigError(
            path, value.to_yaml(), "a distribution gives floats; use a grid or a choice"
        )
    if search == "optuna" and value.kind in ("grid", "choice"):
        for option in value.options:
            if option is not None and not isinstance(option, (bool, int, float, str)):
                raise ConfigError(path, option, "Optuna's categorical options are single values")
    if key in TRAIN_FIELDS and not value.is_distribution:
        for option in value.options:
            check_train_value(path, key, option)


def check_points(block: Block, train: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every grid/choice combination of ``block``, distributions at their low and high ends."""
    listed = [k for k, v in block.items() if v.kind in ("grid", "choice")]
    ranges = [k for k, v in block.items() if v.is_distribution]
    for combo in itertools.product(*(block[k].options for k in listed)):
        point = {k: (v.fixed if v.kind == "fixed" else None) for k, v in block.items()}
        point.update(zip(listed, combo, strict=True))
        for end in (0, 1) if ranges else (0,):
            point.update({k: block[k].options[end] for k in ranges})
            yield {**train, **point}


def _check_config(
    i: int, block: Block, train: Mapping[str, Any], flat: Mapping[str, Any], metric: str
) -> None:
    def prefix(key: str) -> str:
        return f"blocks[{i}]" if key in block or key not in train else "train"

    if metric.startswith("val_") and not flat.get("val_fraction", TrainConfig.val_fraction) > 0:
        raise ConfigError(
            f"{prefix('val_fraction')}.val_fraction",
            flat.get("val_fraction"),
            f"metric {metric!r} needs a validation split (val_fraction > 0)",
        )
    values = dict(flat)
    if values.get("device") == "cuda":
        values["device"] = "cpu"  # the machine that loads the space need not have the GPU
    try:
        TrainConfig.from_flat(values)
    except ConfigError as err:
        raise ConfigError(
            f"{prefix(err.field)}.{err.field}", err.value, err.problem, choices=err.choices
        ) from None


def check_train_value(path: str, key: str, value: Any) -> None:
    """Type checks TrainConfig leaves to its callers (names, flags, paths)."""
    if key in ("model", "dataset", "device", "schedule_granularity") and not isinstance(value, str):
        raise ConfigError(path, value, "must be a name")
    if key in _BOOL_FIELDS and not isinstance(value, bool):
        raise ConfigError(path, value, "must be true or false")
    if key == "data_root" and value is not None and not isinstance(value, str):
        raise ConfigError(path, value, "must be a folder path")
    if key == "val_fraction" and not is_number(value):
        raise ConfigError(path, value, "must be a number in [0, 1)")
    if key == "train_limit" and value is not None:
        require_int(path, value, 2)  # as load_dataset requires
