"""The resolved space written beside an experiment's results, so ``taso-tune resume`` can rebuild
the sweep from the folder alone (it reads it back through :mod:`taso_tune.experiment.reader`)."""

from __future__ import annotations

import yaml

from taso_tune.core.records import SPACE_FILE
from taso_tune.core.storage import write_experiment_file
from taso_tune.spaces import SweepSpec


def write_space_file(experiment: str, spec: SweepSpec) -> None:
    """Write the resolved space beside the results, atomically."""
    write_experiment_file(experiment, SPACE_FILE, yaml.safe_dump(spec.to_dict(), sort_keys=False))
