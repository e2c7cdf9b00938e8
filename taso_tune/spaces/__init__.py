"""Search spaces: the YAML files in ``search_spaces/`` and the :class:`SweepSpec` they load into.

The package sits under the Ray layer and imports neither ``ray`` nor ``optuna``. Its rooms:
``values`` (one block value), ``counting`` (progress of long expansions), ``sections``
(scheduler/search/resources), ``yaml_loader``, ``validation``, ``spec_checks`` (checks across
fields), ``expansion`` (configurations, ids, counts), ``spec`` (the SweepSpec), ``optuna_space``
(Optuna's define-by-run space), ``loader`` (file -> spec) and ``overrides`` (command-line changes).
They import one another in that order, never back, and only at the top of a module.
"""

from taso_tune.spaces.expansion import configurations
from taso_tune.spaces.loader import load_space, load_space_dict
from taso_tune.spaces.optuna_space import OptunaSpace, resolve_optuna_params
from taso_tune.spaces.overrides import with_overrides
from taso_tune.spaces.sections import Resources, SchedulerSpec, SearchSpec
from taso_tune.spaces.spec import SweepSpec
from taso_tune.spaces.validation import TRAIN_FIELDS
from taso_tune.spaces.values import Value, parse_value
from taso_tune.spaces.yaml_loader import SpaceLoader, read_yaml

__all__ = [
    "TRAIN_FIELDS",
    "OptunaSpace",
    "Resources",
    "SchedulerSpec",
    "SearchSpec",
    "SpaceLoader",
    "SweepSpec",
    "Value",
    "configurations",
    "load_space",
    "load_space_dict",
    "parse_value",
    "read_yaml",
    "resolve_optuna_params",
    "with_overrides",
]
