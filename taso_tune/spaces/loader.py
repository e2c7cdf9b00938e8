"""Load a space file (or its parsed YAML) into a validated :class:`SweepSpec`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taso_tune.core.errors import ConfigError
from taso_tune.spaces.sections import (
    SCHEDULER_KEYS,
    SEARCH_KEYS,
    Resources,
    SchedulerSpec,
    SearchSpec,
)
from taso_tune.spaces.spec import SweepSpec
from taso_tune.spaces.values import require_keys
from taso_tune.spaces.yaml_loader import read_yaml

TOP_LEVEL_KEYS = (
    "name",
    "description",
    "train",
    "metric",
    "mode",
    "seeds",
    "seeds_per_trial",
    "resources",
    "scheduler",
    "search",
    "max_concurrent",
    "checkpoint_every",
    "checkpoint_min_seconds",
    "seed_packing",
    "reuse_actors",
    "max_failures",
    "max_trials",
    "blocks",
)


def _section(
    data: Mapping[str, Any], key: str, kinds: Mapping[str, tuple[str, ...]], default: str
) -> dict:
    """The ``scheduler:`` or ``search:`` section as keyword arguments (a bare name is its type)."""
    raw = data.get(key, {"type": default})
    if (
        raw is None
    ):  # `scheduler:` left empty means no early stopping; `search:` left empty, the default
        raw = {"type": "none" if key == "scheduler" else default}
    elif isinstance(raw, str):
        raw = {"type": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(key, raw, f"must be a mapping or one of the {key} types", choices=kinds)
    kind = raw.get("type", default)
    if not isinstance(kind, str) or kind not in kinds:
        raise ConfigError(f"{key}.type", kind, f"unknown {key}", choices=kinds)
    require_keys(key, raw, kinds[kind], f"{key} {kind!r}")
    return dict(raw)


#: Top-level keys passed to SweepSpec as they are.
PLAIN_KEYS = (
    "seeds_per_trial",
    "max_concurrent",
    "checkpoint_every",
    "checkpoint_min_seconds",
    "seed_packing",
    "reuse_actors",
    "max_failures",
    "max_trials",
)


def _seeds(raw: Any) -> dict[str, Any]:
    """``seeds: 5`` (seeds 0-4), ``seeds: {count: 5, start: 100}`` (100-104) or ``seeds: [3, 7, 11]``."""
    if isinstance(raw, Mapping):
        require_keys("seeds", raw, ("count", "start"), "seeds")
        if "count" not in raw:
            raise ConfigError("seeds.count", None, "is required (how many seeds)")
        return {"seeds": raw["count"], "seed_start": raw.get("start", 0)}
    if isinstance(raw, (list, tuple)):
        return {"seeds": len(raw), "seed_list": tuple(raw)}
    return {"seeds": raw}


def load_space_dict(data: Mapping[str, Any], source: str | None = None) -> SweepSpec:
    """Validate parsed YAML (or a :meth:`SweepSpec.to_dict`) and build the spec.

    ``source`` names the file in error messages. Raises :class:`ConfigError` for anything wrong.
    """
    try:
        if not isinstance(data, Mapping):
            kind = "empty" if data is None else f"a {type(data).__name__}"
            raise ConfigError(
                "space", data, f"the top level must be a mapping of settings, not {kind}"
            )
        require_keys("", data, TOP_LEVEL_KEYS, "a space file")
        for key in ("name", "blocks"):
            if key not in data:
                raise ConfigError(key, None, "is required")
        resources = data.get("resources", {})
        if not isinstance(resources, Mapping):
            raise ConfigError("resources", resources, "must be a mapping with cpus and gpus")
        require_keys("resources", resources, ("cpus", "gpus"), "resources")
        metric = data.get("metric", SweepSpec.metric)
        mode = data.get(
            "mode", "min" if isinstance(metric, str) and metric.endswith("_loss") else "max"
        )
        # keys the file leaves out take SweepSpec's defaults, written once there
        given = {key: data[key] for key in PLAIN_KEYS if key in data}
        return SweepSpec(
            name=data["name"],
            train=data.get("train") or {},
            blocks=data["blocks"],
            source=source,
            description="" if data.get("description") is None else data["description"],
            **(_seeds(data["seeds"]) if "seeds" in data else {}),
            metric=metric,
            mode=mode,
            scheduler=SchedulerSpec(
                **_section(data, "scheduler", SCHEDULER_KEYS, SchedulerSpec.type)
            ),
            search=SearchSpec(**_section(data, "search", SEARCH_KEYS, SearchSpec.type)),
            resources=Resources(**resources),
            **given,
        )
    except ConfigError as err:
        if source and err.file is None:
            raise err.in_file(source) from None
        raise


def load_space(path: str, max_trials: int | None = None) -> SweepSpec:
    """Read the space file at ``path`` and validate everything (see ``docs/search-spaces.md``).

    ``max_trials`` replaces the file's cap on its number of trials (``max_trials:``, default
    10,000), which is checked before the configurations are.
    """
    data = read_yaml(path)
    if max_trials is not None and isinstance(data, Mapping):
        data = {**data, "max_trials": max_trials}
    return load_space_dict(data, source=str(path))
