"""What a finished sweep leaves for its users beside the results: the report and the defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass

from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import is_uri
from taso_tune.results.experiment import Experiment, SelectOn
from taso_tune.results.export import export_defaults
from taso_tune.results.report import write_report


@dataclass(frozen=True)
class Outputs:
    """Where :func:`write_outputs` wrote (``None``: not written, and ``why_not`` says why)."""

    report: str | None
    defaults: str | None
    why_not: str = ""


def write_outputs(experiment: Experiment, select_on: SelectOn = "val") -> Outputs:
    """Write ``EXPERIMENT/report.html`` and ``EXPERIMENT/defaults.yaml`` for a local experiment.

    An experiment at a URI gets neither (``taso-tune report EXPERIMENT -o FILE`` makes the page);
    one in which no configuration ran to the end gets a report but no defaults.
    """
    if is_uri(experiment.path):
        return Outputs(
            None, None, f"make the report with `taso-tune report {experiment.path} -o report.html`"
        )
    report = write_report(experiment, os.path.join(experiment.path, "report.html"), select_on)
    defaults = os.path.join(experiment.path, "defaults.yaml")
    try:
        export_defaults(experiment, defaults, select_on)
    except ConfigError as err:  # no configuration ran to the end: nothing to export
        return Outputs(report, None, err.problem)
    return Outputs(report, defaults)
