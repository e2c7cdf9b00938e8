"""Search spaces: the YAML files in ``search_spaces/`` and the :class:`SweepSpec` they load into.

A space is a union of blocks; each block is its own grid (plus, for random and Optuna search,
distributions). Everything is validated when the file is loaded, before any trial starts: every
configuration goes through :meth:`TrainConfig.from_flat`, and every error names the file, the field
path (``blocks[2].lr``) and the bad value. The format is documented in ``docs/search-spaces.md``.

This module sits under the Ray layer: it does not import ``ray``; ``optuna`` is imported by nobody
here (:meth:`SweepSpec.optuna_space` only calls the trial object it is given).
"""

from __future__ import annotations

import copy
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np

from taso_tune.errors import ConfigError
from taso_tune.layout import METRICS
from taso_tune.optimizers import OPTIMIZERS
from taso_tune.space_values import (
    SCHEDULER_KEYS,
    SEARCH_KEYS,
    Resources,
    SchedulerSpec,
    SearchSpec,
    Value,
    did_you_mean,
    format_value,
    is_int,
    is_number,
    parse_value,
    read_yaml,
    require_int,
    require_keys,
)
from taso_tune.train import TrainConfig

__all__ = ["DEFAULT_GPUS_PER_TRIAL", "METRICS", "Resources", "SchedulerSpec", "SearchSpec", "SweepSpec",
           "load_space", "load_space_dict"]  # fmt: skip

DEFAULT_GPUS_PER_TRIAL: dict[str, float] = {"lenet5": 0.125, "vgg19": 1.0, "resnet18": 1.0}

TOP_LEVEL_KEYS = ("name", "description", "train", "metric", "mode", "seeds", "resources", "scheduler",
                  "search", "max_concurrent", "checkpoint_every", "max_failures", "blocks")  # fmt: skip
#: TrainConfig fields a space may set, in ``train:`` or in a block (seeds come from ``seeds:``).
TRAIN_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(TrainConfig) if f.name not in ("hparams", "seed", "optimizer")
)
_BOOL_FIELDS = ("download", "amp", "channels_last", "compile")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class _OptunaSpace:
    """The define-by-run function of a spec (a class, not a closure, so Ray can pickle it)."""

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec

    def __call__(self, trial: Any) -> dict[str, Any]:
        blocks = self.spec.parsed_blocks()
        index = trial.suggest_categorical("block", list(range(len(blocks)))) if len(blocks) > 1 else 0
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


@dataclass(frozen=True)
class SweepSpec:
    """A validated search space: what to train (``train`` + ``blocks``) and how to search it.

    Construct it with :func:`load_space` or :func:`load_space_dict`; ``blocks`` hold the YAML form
    of each value (plain values and ``{grid: [...]}``-style mappings).
    """

    name: str
    train: Mapping[str, Any]
    blocks: tuple[Mapping[str, Any], ...]
    source: str | None = field(default=None, compare=False)
    description: str = ""
    seeds: int = 1
    metric: str = "val_acc"
    mode: Literal["max", "min"] = "max"
    scheduler: SchedulerSpec = SchedulerSpec()
    search: SearchSpec = SearchSpec()
    resources: Resources = Resources()
    max_concurrent: int | None = None
    checkpoint_every: int = 1
    max_failures: int = 2

    def __post_init__(self) -> None:
        try:
            self._validate()
        except ConfigError as err:
            if err.file is None and self.source:
                raise err.in_file(self.source) from None
            raise

    # --- validation ----------------------------------------------------------------------------
    def _validate(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ConfigError("name", self.name, "must be letters, digits, '_', '.' or '-'")
        if not isinstance(self.description, str):
            raise ConfigError("description", self.description, "must be text")
        require_int("seeds", self.seeds, 1)
        require_int("checkpoint_every", self.checkpoint_every, 1)
        require_int("max_failures", self.max_failures, 0)
        if self.max_concurrent is not None:
            require_int("max_concurrent", self.max_concurrent, 1)
        if self.metric not in METRICS:
            raise ConfigError("metric", self.metric, "unknown metric", choices=METRICS)
        expected = "min" if self.metric.endswith("_loss") else "max"
        if self.mode != expected:
            raise ConfigError("mode", self.mode, f"contradicts metric {self.metric!r}, which is "
                              f"{'minimised' if expected == 'min' else 'maximised'}", choices=[expected])  # fmt: skip
        for name, kind in (("scheduler", SchedulerSpec), ("search", SearchSpec), ("resources", Resources)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(name, getattr(self, name), f"must be a {kind.__name__}")
        self._validate_train()
        if not isinstance(self.blocks, (list, tuple)) or not self.blocks:
            raise ConfigError("blocks", self.blocks, "must be a non-empty list of blocks")
        blocks = tuple(self._normalise_block(i, block) for i, block in enumerate(self.blocks))
        object.__setattr__(self, "blocks", blocks)
        for i in range(len(blocks)):
            for flat in self._check_points(i):
                self._check_config(i, flat)
        self._validate_scheduler()

    def _validate_train(self) -> None:
        if not isinstance(self.train, Mapping):
            raise ConfigError("train", self.train, "must be a mapping of training fields")
        for key, value in self.train.items():
            if key == "seed":
                raise ConfigError("train.seed", value, "seeds come from the top-level `seeds:` key")
            if key == "optimizer":
                raise ConfigError("train.optimizer", value, "the optimizer is chosen in each block")
            if key not in TRAIN_FIELDS:
                raise ConfigError(f"train.{key}", value, f"unknown training field{did_you_mean(key, TRAIN_FIELDS)}",
                                  choices=TRAIN_FIELDS)  # fmt: skip
            if isinstance(value, Mapping):
                raise ConfigError(f"train.{key}", dict(value), "train holds fixed values; put grids and "
                                  "distributions in a block")  # fmt: skip
            _check_train_value(f"train.{key}", key, value)
        object.__setattr__(self, "train", copy.deepcopy(dict(self.train)))

    def _normalise_block(self, i: int, block: Any) -> dict[str, Any]:
        where = f"blocks[{i}]"
        if not isinstance(block, Mapping):
            raise ConfigError(where, block, "a block is a mapping of field: value")
        if "optimizer" not in block:
            raise ConfigError(f"{where}.optimizer", None, "every block names its optimizer",
                              choices=sorted(OPTIMIZERS))  # fmt: skip
        values = {key: parse_value(f"{where}.{key}", raw) for key, raw in block.items()}
        optimizer = values["optimizer"]
        if optimizer.is_distribution:
            raise ConfigError(f"{where}.optimizer", optimizer.to_yaml(), "must be a name, a grid or a choice")
        for name in optimizer.options:
            if not isinstance(name, str):
                raise ConfigError(f"{where}.optimizer", name, "must be an optimizer name", choices=sorted(OPTIMIZERS))
            OPTIMIZERS.get_or_fail(name, f"{where}.optimizer")
        for key, value in values.items():
            path = f"{where}.{key}"
            if key == "seed":
                raise ConfigError(path, value.to_yaml(), "seeds come from the top-level `seeds:` key")
            if key != "optimizer" and key not in TRAIN_FIELDS:
                for name in optimizer.options:
                    if key not in OPTIMIZERS[name].defaults:
                        valid = [*sorted(OPTIMIZERS[name].defaults), *TRAIN_FIELDS]
                        raise ConfigError(path, value.to_yaml(), f"not a field of optimizer {name!r} nor a "
                                          f"training field{did_you_mean(key, valid)}", choices=valid)  # fmt: skip
            self._check_value_kind(path, key, value)
        return {key: value.to_yaml() for key, value in values.items()}

    def _check_value_kind(self, path: str, key: str, value: Value) -> None:
        search = self.search.type
        if search == "grid" and value.kind not in ("fixed", "grid"):
            raise ConfigError(path, value.to_yaml(), f"a {value.kind} needs search: random or optuna "
                              "(search: grid takes fixed values and grids)")  # fmt: skip
        if value.is_distribution and key in TRAIN_FIELDS and key != "val_fraction":
            raise ConfigError(path, value.to_yaml(), "a distribution gives floats; use a grid or a choice")
        if search == "optuna" and value.kind in ("grid", "choice"):
            for option in value.options:
                if option is not None and not isinstance(option, (bool, int, float, str)):
                    raise ConfigError(path, option, "Optuna's categorical options are single values")
        if key in TRAIN_FIELDS and not value.is_distribution:
            for option in value.options:
                _check_train_value(path, key, option)

    def _check_points(self, i: int) -> Iterator[dict[str, Any]]:
        """Every grid/choice combination of block ``i``, distributions at their low and high ends."""
        block = self.parsed_blocks()[i]
        listed = [k for k, v in block.items() if v.kind in ("grid", "choice")]
        ranges = [k for k, v in block.items() if v.is_distribution]
        for combo in itertools.product(*(block[k].options for k in listed)):
            point = {k: (v.fixed if v.kind == "fixed" else None) for k, v in block.items()}
            point.update(zip(listed, combo, strict=True))
            for end in (0, 1) if ranges else (0,):
                point.update({k: block[k].options[end] for k in ranges})
                yield {**self.train, **point}

    def _check_config(self, i: int, flat: Mapping[str, Any]) -> None:
        block = self.blocks[i]

        def prefix(key: str) -> str:
            return f"blocks[{i}]" if key in block or key not in self.train else "train"

        if self.metric.startswith("val_") and not flat.get("val_fraction", TrainConfig.val_fraction) > 0:
            raise ConfigError(f"{prefix('val_fraction')}.val_fraction", flat.get("val_fraction"),
                              f"metric {self.metric!r} needs a validation split (val_fraction > 0)")  # fmt: skip
        values = dict(flat)
        if values.get("device") == "cuda":
            values["device"] = "cpu"  # the machine that loads the space need not have the GPU
        try:
            TrainConfig.from_flat(values)
        except ConfigError as err:
            raise ConfigError(f"{prefix(err.field)}.{err.field}", err.value, err.problem,
                              choices=err.choices) from None  # fmt: skip

    def _validate_scheduler(self) -> None:
        epochs, scheduler = self.epochs, self.scheduler
        if scheduler.type == "asha" and scheduler.grace_period >= epochs:
            raise ConfigError("scheduler.grace_period", scheduler.grace_period,
                              f"must be less than the epochs ({epochs})")  # fmt: skip
        if scheduler.type == "budget-sh":
            if scheduler.min_epochs is not None and scheduler.min_epochs > epochs:
                raise ConfigError("scheduler.min_epochs", scheduler.min_epochs,
                                  f"must be at most the epochs ({epochs})")  # fmt: skip
            if self.search.type == "optuna":
                raise ConfigError("scheduler.type", "budget-sh", "needs a list of configurations "
                                  "(search grid or random), not optuna")  # fmt: skip

    # --- reading the space ---------------------------------------------------------------------
    def parsed_blocks(self) -> list[dict[str, Value]]:
        """Each block's values as :class:`~taso_tune.space_values.Value` objects, in file order."""
        return [{k: parse_value(f"blocks[{i}].{k}", v) for k, v in b.items()} for i, b in enumerate(self.blocks)]

    @property
    def epochs(self) -> int:
        """The planned epochs: ``train.epochs`` (default 20), or the most any block asks for."""
        planned = [self.train.get("epochs", TrainConfig.epochs)]
        for block in self.parsed_blocks():
            if "epochs" in block:
                planned.extend(block["epochs"].options)
        return max(planned)

    def configurations(self) -> list[dict[str, Any]]:
        """Every configuration (before seeds) as one flat training dict with ``config_id`` and ``block``.

        Blocks in file order; inside a block, the grid in row-major order of its keys as written.
        Random search draws ``num_samples`` configurations per grid point (one when the block has
        nothing to draw) from a generator seeded with (``search.seed``, block index).
        """
        if self.search.type == "optuna":
            raise ConfigError("search.type", "optuna", "has no list of configurations: Optuna proposes "
                              "them during the sweep (see optuna_space())", file=self.source)  # fmt: skip
        blocks = self.parsed_blocks()
        rows: list[tuple[int, dict[str, Any]]] = []
        for i, block in enumerate(blocks):
            gridded = [k for k, v in block.items() if v.kind == "grid"]
            drawn = [k for k, v in block.items() if v.varied and v.kind != "grid"]
            rng = np.random.default_rng([self.search.seed, i])
            draws = self.search.num_samples if drawn else 1
            for combo in itertools.product(*(block[k].options for k in gridded)):
                point = dict(zip(gridded, combo, strict=True))
                for _ in range(draws):
                    values = {**point, **{k: block[k].sample(rng) for k in drawn}}
                    rows.append((i, self._flat(block, values)))
        ids = [self._config_id(blocks[i], flat) for i, flat in rows]
        shared = Counter(ids)
        # blocks of one optimizer that differ in a fixed field (e.g. momentum) name that field too
        ids = [self._config_id(blocks[i], flat, with_fixed=True) if shared[cid] > 1 else cid
               for (i, flat), cid in zip(rows, ids, strict=True)]  # fmt: skip
        ids = _unique_ids(list(zip((i for i, _ in rows), ids, strict=True)))
        return [{**flat, "config_id": cid, "block": i} for (i, flat), cid in zip(rows, ids, strict=True)]

    def trials(self) -> list[dict[str, Any]]:
        """:meth:`configurations` times seeds 0..seeds-1, each with ``seed`` (config-major order)."""
        return [{**config, "seed": seed} for config in self.configurations() for seed in range(self.seeds)]

    def _flat(self, block: Mapping[str, Value], chosen: Mapping[str, Any]) -> dict[str, Any]:
        values = {k: chosen[k] if v.varied else v.fixed for k, v in block.items()}
        return copy.deepcopy({**self.train, **values})

    @staticmethod
    def _config_id(block: Mapping[str, Value], flat: Mapping[str, Any], with_fixed: bool = False) -> str:
        parts = [format_value(flat["optimizer"])]
        parts += [f"{k}={format_value(flat[k])}" for k, v in block.items() if v.varied and k != "optimizer"]
        if with_fixed:
            parts += [f"{k}={format_value(flat[k])}" for k, v in block.items()
                      if not v.varied and k != "optimizer" and k not in TRAIN_FIELDS]  # fmt: skip
        return "_".join(parts)

    # --- Optuna --------------------------------------------------------------------------------
    def optuna_space(self) -> Callable[[Any], dict[str, Any]]:
        """The define-by-run function for ``OptunaSearch(space=...)``.

        Given an Optuna trial it picks a block (``"block"``, when there are several), suggests that
        block's varied fields as ``"b<i>.<field>"`` (grid and choice: categorical; uniform and
        loguniform: floats) and returns the constant part (train fields and the block's fixed values).
        """
        if self.search.type != "optuna":
            raise ConfigError("search.type", self.search.type, "optuna_space() needs search: optuna",
                              file=self.source)  # fmt: skip
        return _OptunaSpace(self)

    def resolve_optuna_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Turn a trial's suggested params (``{"block": 0, "b0.lr": 0.01, ...}``; other keys are
        ignored) into the flat training dict :meth:`configurations` would give, with ``config_id``
        and ``block``. ``config_id`` ends in ``_b<i>`` when another block shares the optimizer."""
        blocks = self.parsed_blocks()
        index = params.get("block", 0)
        if not is_int(index) or not 0 <= index < len(blocks):
            raise ConfigError("block", index, "not a block of this space", choices=range(len(blocks)),
                              file=self.source)  # fmt: skip
        block = blocks[index]
        chosen = {}
        for key, value in block.items():
            if value.varied:
                name = f"b{index}.{key}"
                if name not in params:
                    raise ConfigError(name, None, "missing from the suggested parameters", file=self.source)
                chosen[key] = params[name]
        flat = self._flat(block, chosen)
        config_id = self._config_id(block, flat)
        others = {n for j, b in enumerate(blocks) if j != index for n in b["optimizer"].options}
        if flat["optimizer"] in others:
            config_id += f"_b{index}"
        return {**flat, "config_id": config_id, "block": index}

    # --- changing and saving -------------------------------------------------------------------
    def with_overrides(
        self,
        *,
        epochs: int | None = None,
        seeds: int | None = None,
        scheduler: str | None = None,
        max_concurrent: int | None = None,
        cpus: float | None = None,
        gpus: float | None = None,
        name: str | None = None,
    ) -> SweepSpec:
        """The same space with command-line overrides applied (``None``: leave as is), re-validated.

        ``epochs`` applies to every block. An override that leaves the space invalid (``--epochs 2``
        under ASHA with ``grace_period: 3``) fails with a ConfigError naming the flag.
        """
        steps = [(flag, value, own_field, apply) for flag, value, own_field, apply in (
            ("--epochs", epochs, "train.epochs", _set_epochs), ("--seeds", seeds, "seeds", _set_top("seeds")),
            ("--scheduler", scheduler, "scheduler.type", _set_scheduler),
            ("--max-concurrent", max_concurrent, "max_concurrent", _set_top("max_concurrent")),
            ("--cpus-per-trial", cpus, "resources.cpus", _set_resource("cpus")),
            ("--gpus-per-trial", gpus, "resources.gpus", _set_resource("gpus")), ("--name", name, "name", _set_top("name")),
        ) if value is not None]  # fmt: skip

        def load(changes: list) -> SweepSpec:
            data = self.to_dict()
            for _, value, _, apply in changes:
                apply(data, value)
            return load_space_dict(data, source=self.source)

        def blame(flag: str, value: Any, own_field: str, err: ConfigError) -> ConfigError:
            problem = err.problem if err.field == own_field else (
                f"leaves {err.field} = {err.value!r} invalid: {err.problem}")  # fmt: skip
            return ConfigError(flag, value, problem, file=self.source, choices=err.choices)

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

    def to_dict(self) -> dict[str, Any]:
        """The resolved space as plain YAML-able data; ``load_space_dict(to_dict())`` gives an equal spec."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data.update(train=copy.deepcopy(dict(self.train)), metric=self.metric, mode=self.mode, seeds=self.seeds,
                    resources=self.resources.to_dict(), scheduler=self.scheduler.to_dict(),
                    search=self.search.to_dict())  # fmt: skip
        if self.max_concurrent is not None:
            data["max_concurrent"] = self.max_concurrent
        data.update(checkpoint_every=self.checkpoint_every, max_failures=self.max_failures,
                    blocks=[copy.deepcopy(dict(block)) for block in self.blocks])  # fmt: skip
        return data


def _check_train_value(path: str, key: str, value: Any) -> None:
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
        require_int(path, value, 1)


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


def _set_epochs(data: dict[str, Any], epochs: Any) -> None:
    data["train"]["epochs"] = epochs
    for block in data["blocks"]:
        block.pop("epochs", None)


def _set_top(key: str) -> Callable[[dict[str, Any], Any], None]:
    return lambda data, value: data.__setitem__(key, value)


def _set_resource(key: str) -> Callable[[dict[str, Any], Any], None]:
    return lambda data, value: data["resources"].__setitem__(key, value)


def _set_scheduler(data: dict[str, Any], kind: Any) -> None:
    current = data["scheduler"]
    if current["type"] != kind:
        kept = SCHEDULER_KEYS.get(kind, ("type",))
        data["scheduler"] = {"type": kind, **{k: v for k, v in current.items() if k in kept and k != "type"}}


def _section(data: Mapping[str, Any], key: str, kinds: Mapping[str, tuple[str, ...]], default: str) -> dict:
    """The ``scheduler:`` or ``search:`` section as keyword arguments (a bare name is its type)."""
    raw = data.get(key, {"type": default})
    if raw is None:  # `scheduler:` left empty means no early stopping; `search:` left empty, the default
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


def load_space_dict(data: Mapping[str, Any], source: str | None = None) -> SweepSpec:
    """Validate parsed YAML (or a :meth:`SweepSpec.to_dict`) and build the spec.

    ``source`` names the file in error messages. Raises :class:`ConfigError` for anything wrong.
    """
    try:
        if not isinstance(data, Mapping):
            kind = "empty" if data is None else f"a {type(data).__name__}"
            raise ConfigError("space", data, f"the top level must be a mapping of settings, not {kind}")
        require_keys("", data, TOP_LEVEL_KEYS, "a space file")
        for key in ("name", "blocks"):
            if key not in data:
                raise ConfigError(key, None, "is required")
        resources = data.get("resources", {})
        if not isinstance(resources, Mapping):
            raise ConfigError("resources", resources, "must be a mapping with cpus and gpus")
        require_keys("resources", resources, ("cpus", "gpus"), "resources")
        metric = data.get("metric", "val_acc")
        mode = data.get("mode", "min" if isinstance(metric, str) and metric.endswith("_loss") else "max")
        return SweepSpec(
            name=data["name"],
            train=data.get("train") or {},
            blocks=data["blocks"],
            source=source,
            description="" if data.get("description") is None else data["description"],
            seeds=data.get("seeds", 1),
            metric=metric,
            mode=mode,
            scheduler=SchedulerSpec(**_section(data, "scheduler", SCHEDULER_KEYS, "asha")),
            search=SearchSpec(**_section(data, "search", SEARCH_KEYS, "grid")),
            resources=Resources(**resources),
            max_concurrent=data.get("max_concurrent"),
            checkpoint_every=data.get("checkpoint_every", 1),
            max_failures=data.get("max_failures", 2),
        )
    except ConfigError as err:
        if source and err.file is None:
            raise err.in_file(source) from None
        raise


def load_space(path: str) -> SweepSpec:
    """Read the space file at ``path`` and validate everything (see ``docs/search-spaces.md``)."""
    return load_space_dict(read_yaml(path), source=str(path))
