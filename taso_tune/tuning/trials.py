"""Where a sweep's trials come from: the one seam between a space's search type and Ray Tune.

A :class:`TrialSource` answers the questions the runner and the trainable ask, so neither branches on
``search.type``: the param space and searcher to give the Tuner, how a trial's config becomes a flat
training dict, and which configurations (data sets, models) the sweep can train.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ray import tune

from taso_tune.spaces import OptunaSpace, SweepSpec, resolve_optuna_params


class TrialSource(Protocol):
    """The kind of search a sweep runs (grid/random, or Optuna)."""

    spec: SweepSpec
    #: Columns of the trial config shown in the progress table (``None``: Ray's choice).
    parameter_columns: dict[str, str] | None

    def param_space(self) -> dict[str, Any] | None:
        """The Tuner's ``param_space`` (``None`` when a searcher proposes every trial)."""

    def search_alg(self) -> tuple[Any, int]:
        """``(search_alg, num_samples)`` for the TuneConfig."""

    def flat_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The flat training dict of a trial (``config_id``, ``block``, ``seeds`` and training fields)."""

    def planned_trials(self) -> int:
        """How many trials the sweep runs (for the progress lines)."""

    def fixed_configs(self) -> list[dict[str, Any]]:
        """Flat dicts that cover every data set and model the sweep can train (for loading data
        once and choosing resources before the sweep starts)."""


class GridTrials:
    """Grid and random search: every trial known up front, carried under ``trial`` in its config.

    A trial is a configuration with all its seeds (``seeds_per_trial: 1``: one trial per seed).
    ``config_ids`` narrows the sweep to some configurations (a budget-sh rung's survivors).
    """

    parameter_columns = {"trial/optimizer": "optimizer"}

    def __init__(self, spec: SweepSpec, config_ids: Sequence[str] | None = None) -> None:
        self.spec = spec
        configs = spec.configurations()
        if config_ids is not None:
            wanted = set(config_ids)
            configs = [c for c in configs if c["config_id"] in wanted]
        self.trials = [{**c, "seeds": list(group)} for c in configs for group in seed_groups(spec)]

    def param_space(self) -> dict[str, Any]:
        return {"trial": tune.grid_search(self.trials)}

    def search_alg(self) -> tuple[Any, int]:
        return None, 1

    def flat_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return dict(config["trial"])

    def planned_trials(self) -> int:
        return len(self.trials)

    def fixed_configs(self) -> list[dict[str, Any]]:
        return self.spec.configurations()


def seed_groups(spec: SweepSpec) -> list[tuple[int, ...]]:
    """The seeds of each trial of a configuration: all of them together, or one each."""
    seeds = spec.seed_values
    return [seeds] if spec.seeds_per_trial == "all" else [(s,) for s in seeds]


class OptunaTrials:
    """Optuna search: its searcher suggests each configuration (``b<i>.<field>`` values), trained on
    all the seeds in one trial (with ``seeds_per_trial: 1``, the suggestion is repeated once per seed);
    :func:`~taso_tune.spaces.resolve_optuna_params` turns it into the flat dict a grid trial carries."""

    parameter_columns = None

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec

    def param_space(self) -> None:
        return None

    def search_alg(self) -> tuple[Any, int]:
        from ray.tune.search import Repeater
        from ray.tune.search.optuna import OptunaSearch

        spec = self.spec
        searcher = OptunaSearch(
            space=OptunaSpace(spec), metric=spec.metric, mode=spec.mode, seed=spec.search.seed
        )
        groups = len(seed_groups(spec))
        if groups > 1:
            searcher = Repeater(searcher, repeat=groups, set_index=True)
        return searcher, spec.search.num_samples * groups

    def flat_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        flat = resolve_optuna_params(
            self.spec, {k: v for k, v in config.items() if k != "__trial_index__"}
        )
        flat["seeds"] = list(seed_groups(self.spec)[int(config.get("__trial_index__", 0))])
        return flat

    def planned_trials(self) -> int:
        return self.spec.search.num_samples * len(seed_groups(self.spec))

    def fixed_configs(self) -> list[dict[str, Any]]:
        spec = self.spec
        return [
            {**spec.train, **{k: v.fixed for k, v in block.items() if not v.varied}}
            for block in spec.blocks
        ]


def trial_source(spec: SweepSpec) -> TrialSource:
    """The trial source of ``spec``'s search type."""
    return OptunaTrials(spec) if spec.search.type == "optuna" else GridTrials(spec)
