"""The grid-edge warning: a family's pick on the edge of the range it was searched over.

When the best learning rate of a family is the largest value tried, the best may lie beyond it, and a
comparison with a family whose pick is interior is not a fair one. Every output that names a pick
(the summary, the report, the export) says so, so the user extends the grid.

A grid or choice field is at its edge when the pick holds its smallest or largest value (of two or
more); a distribution field when the pick lies in the outer :data:`EDGE_SHARE` of its range (on a
log scale for ``loguniform``). Fields of a family are those of every block of the space that trains
that optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from taso_tune.results.aggregate import present
from taso_tune.spaces import SweepSpec
from taso_tune.spaces.values import is_number

#: The outer share of a distribution's range that counts as its edge.
EDGE_SHARE = 0.05


def pick_config(row: Mapping[str, Any]) -> dict[str, Any]:
    """A pick's hyperparameters by field: the ``hp.*`` cells of a results row that hold a value."""
    return {c[3:]: row[c] for c in row.keys() if str(c).startswith("hp.") and present(row[c])}


def pick_edge_warnings(spec: SweepSpec | None, row: Mapping[str, Any]) -> list[str]:
    """:func:`edge_warnings` of a family's pick, a row of the results (its ``optimizer`` and its
    ``hp.*`` cells); empty for results without their space file."""
    if spec is None:
        return []
    return edge_warnings(spec, row["optimizer"], pick_config(row))


def _searched(spec: SweepSpec, optimizer: str) -> dict[str, list[tuple[str, tuple[Any, ...]]]]:
    """Each varied field of the blocks that train ``optimizer``: its kinds and options."""
    found: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
    for block in spec.blocks:
        trains = block.get("optimizer")
        if trains is None or optimizer not in trains.options:
            continue
        for name, value in block.items():
            if name != "optimizer" and value.varied:
                found.setdefault(name, []).append((value.kind, value.options))
    return found


def _position(kind: str, low: float, high: float, x: float) -> float:
    if kind == "loguniform":
        low, high, x = math.log(low), math.log(high), math.log(x)
    return (x - low) / (high - low) if high > low else 0.5


def edge_warnings(spec: SweepSpec, optimizer: str, config: Mapping[str, Any]) -> list[str]:
    """What of ``config`` (a family's pick: its field values) sits on the edge of what the space
    searched for ``optimizer``, one sentence a field; empty when the pick is interior."""
    warnings = []
    for name, searched in sorted(_searched(spec, optimizer).items()):
        value = config.get(name)
        if not is_number(value):
            continue
        grid = sorted(
            {
                o
                for kind, options in searched
                if kind in ("grid", "choice")
                for o in options
                if is_number(o)
            }
        )
        ranges = [(kind, *options) for kind, options in searched if kind not in ("grid", "choice")]
        if ranges:
            kind, low, high = ranges[0]
            low = min([low, *(r[1] for r in ranges), *grid])
            high = max([high, *(r[2] for r in ranges), *grid])
            where = _position(kind, low, high, value)
            if where >= 1 - EDGE_SHARE:
                warnings.append(
                    f"{name} {value:g} is near the top of the searched range [{low:g}, {high:g}]; "
                    "the best may lie beyond"
                )
            elif where <= EDGE_SHARE:
                warnings.append(
                    f"{name} {value:g} is near the bottom of the searched range [{low:g}, {high:g}]; "
                    "the best may lie beyond"
                )
        elif len(grid) >= 2 and value == grid[-1]:
            warnings.append(f"{name} {value:g} is the largest value tried; the best may lie beyond")
        elif len(grid) >= 2 and value == grid[0]:
            warnings.append(
                f"{name} {value:g} is the smallest value tried; the best may lie beyond"
            )
    return warnings
