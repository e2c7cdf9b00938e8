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
        """The flat training dict of a trial (``config_id``, ``block``, ``seed`` and training fields)."""

    def fixed_configs(self) -> list[dict[str, Any]]:
        """Flat dicts that cover every data set and model the sweep can train (for loading data
        once and choosing resources before the sweep starts)."""


class GridTrials:
    """Grid and random search: every trial known up front, carried under ``trial`` in its config.

    ``trials`` narrows the sweep to a list of trials (a budget-sh rung's survivors).
    """

    parameter_columns = {"trial/optimizer": "optimizer"}

    def __init__(self, spec: SweepSpec, trials: Sequence[Mapping[str, Any]] | None = None) -> None:
        self.spec = spec
        self.trials = [dict(t) for t in trials] if trials is not None else spec.trials()

    def param_space(self) -> dict[str, Any]:
        return {"trial": tune.grid_search(self.trials)}

    def search_alg(self) -> tuple[Any, int]:
        return None, 1

    def flat_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return dict(config["trial"])

    def fixed_configs(self) -> list[dict[str, Any]]:
        return self.spec.configurations()


class OptunaTrials:
    """Optuna search: its searcher suggests each configuration (``b<i>.<field>`` values), repeated
    once per seed; :func:`~taso_tune.spaces.resolve_optuna_params` turns the suggestion into the
    same flat dict a grid trial carries."""

    parameter_columns = None

    def __init__(self, spec: SweepSpec) -> None:
        self.spec = spec

    def param_space(self) -> None:
        return None

    def search_alg(self) -> tuple[Any, int]:
        from ray.tune.search import Repeater
        from ray.tune.search.optuna import OptunaSearch

        spec = self.spec
        searcher = OptunaSearch(space=OptunaSpace(spec), metric=spec.metric, mode=spec.mode, seed=spec.search.seed)
        if spec.seeds > 1:
            searcher = Repeater(searcher, repeat=spec.seeds, set_index=True)
        return searcher, spec.search.num_samples * spec.seeds

    def flat_config(self, config: Mapping[str, Any]) -> dict[str, Any]:
        flat = resolve_optuna_params(self.spec, {k: v for k, v in config.items() if k != "__trial_index__"})
        flat["seed"] = int(config.get("__trial_index__", 0))
        return flat

    def fixed_configs(self) -> list[dict[str, Any]]:
        spec = self.spec
        return [{**spec.train, **{k: v.fixed for k, v in block.items() if not v.varied}} for block in spec.blocks]


def trial_source(spec: SweepSpec) -> TrialSource:
    """The trial source of ``spec``'s search type."""
    return OptunaTrials(spec) if spec.search.type == "optuna" else GridTrials(spec)
