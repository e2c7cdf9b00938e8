"""The results layer: read an experiment folder (never retrain, never import Ray), aggregate over
seeds, and write what users read: the HTML report (plotly) and the exported defaults."""

from taso_tune.results.experiment import Experiment, load_experiment

__all__ = ["Experiment", "load_experiment"]
