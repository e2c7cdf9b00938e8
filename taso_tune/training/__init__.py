"""The framework-free training layer: models, optimizers, data, one seed's run, and a trial's seeds."""
