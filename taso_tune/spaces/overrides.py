"""Command-line overrides of a space (``--epochs``, ``--seeds``, ``--scheduler``, ...), re-validated
by the same loader as the file, with errors that name the flag."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taso_tune.core.errors import ConfigError
from taso_tune.spaces.loader import load_space_dict
from taso_tune.spaces.sections import SCHEDULER_KEYS
from taso_tune.spaces.spec import ReuseActors, SweepSpec


def with_overrides(
    spec: SweepSpec,
    *,
    epochs: int | None = None,
    seeds: int | None = None,
    seed_start: int | None = None,
    scheduler: str | None = None,
    max_concurrent: int | None = None,
    cpus: float | None = None,
    gpus: float | None = None,
    name: str | None = None,
    seed_packing: str | None = None,
    reuse_actors: ReuseActors | None = None,
) -> SweepSpec:
    """The same space with command-line overrides applied (``None``: leave as is), re-validated.

    ``epochs`` applies to every block. An override that leaves the space invalid (``--epochs 2``
    under ASHA with ``grace_period: 3``) fails with a ConfigError naming the flag.
    """
    steps = [
        (flag, value, own_field, apply)
        for flag, value, own_field, apply in (
            ("--epochs", epochs, "train.epochs", _set_epochs),
            ("--seeds", seeds, "seeds", _set_seeds("count")),
            ("--seed-start", seed_start, "seeds.start", _set_seeds("start")),
            ("--scheduler", scheduler, "scheduler.type", _set_scheduler),
            ("--max-concurrent", max_concurrent, "max_concurrent", _set_top("max_concurrent")),
            ("--cpus-per-trial", cpus, "resources.cpus", _set_resource("cpus")),
            ("--gpus-per-trial", gpus, "resources.gpus", _set_resource("gpus")),
            ("--name", name, "name", _set_top("name")),
            ("--seed-packing", seed_packing, "seed_packing", _set_top("seed_packing")),
            ("--reuse-actors", reuse_actors, "reuse_actors", _set_top("reuse_actors")),
        )
        if value is not None
    ]

    def load(changes: list) -> SweepSpec:
        data = spec.to_dict()
        for _, value, _, apply in changes:
            apply(data, value)
        return load_space_dict(data, source=spec.source)

    def blame(flag: str, value: Any, own_field: str, err: ConfigError) -> ConfigError:
        problem = (
            err.problem
            if err.field == own_field
            else (f"leaves {err.field} = {err.value!r} invalid: {err.problem}")
        )
        return ConfigError(flag, value, problem, file=spec.source, choices=err.choices)

    try:
        return load(steps)
    except ConfigError as err:
        combined = err
    for step in steps:  # name the flag that is wrong on its own, else all of them
        try:
            load([step])
        except ConfigError as err:
            raise blame(step[0], step[1], step[2], err) from None
    flags = ", ".join(step[0] for step in steps)
    raise blame(flags, tuple(step[1] for step in steps), "", combined) from None


def _set_epochs(data: dict[str, Any], epochs: Any) -> None:
    data["train"]["epochs"] = epochs
    for block in data["blocks"]:
        block.pop("epochs", None)


def _set_seeds(key: str) -> Callable[[dict[str, Any], Any], None]:
    """``--seeds N`` / ``--seed-start S`` on any form of ``seeds:`` (a list becomes count and start)."""

    def apply(data: dict[str, Any], value: Any) -> None:
        current = data["seeds"]
        if isinstance(current, list):
            current = {"count": len(current), "start": min(current) if current else 0}
        elif not isinstance(current, dict):
            current = {"count": current, "start": 0}
        data["seeds"] = {**current, key: value}

    return apply


def _set_top(key: str) -> Callable[[dict[str, Any], Any], None]:
    return lambda data, value: data.__setitem__(key, value)


def _set_resource(key: str) -> Callable[[dict[str, Any], Any], None]:
    return lambda data, value: data["resources"].__setitem__(key, value)


def _set_scheduler(data: dict[str, Any], kind: Any) -> None:
    current = data["scheduler"]
    if current["type"] != kind:
        kept = SCHEDULER_KEYS.get(kind, ("type",))
        data["scheduler"] = {
            "type": kind,
            **{k: v for k, v in current.items() if k in kept and k != "type"},
        }
