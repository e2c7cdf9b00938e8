"""The resolved space written beside an experiment's results, so ``taso-tune resume`` can rebuild
the sweep from the folder alone."""

from __future__ import annotations

import yaml

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import SPACE_FILE
from taso_tune.core.storage import read_experiment_file, write_experiment_file
from taso_tune.spaces import SweepSpec, load_space_dict


def read_space_file(experiment: str) -> SweepSpec:
    """The resolved space written beside an experiment's results."""
    try:
        text = read_experiment_file(experiment, SPACE_FILE)
        data = None if text is None else yaml.safe_load(text)
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(
            "experiment",
            experiment,
            f"its {SPACE_FILE} cannot be read ({type(err).__name__}): not a space taso-tune wrote",
        ) from None
    if text is None:
        raise ConfigError(
            "experiment", experiment, f"not a taso-tune experiment folder (no {SPACE_FILE})"
        )
    return load_space_dict(data, source=f"{experiment}/{SPACE_FILE}")


def write_space_file(experiment: str, spec: SweepSpec) -> None:
    """Write the resolved space beside the results, atomically."""
    write_experiment_file(experiment, SPACE_FILE, yaml.safe_dump(spec.to_dict(), sort_keys=False))
