"""Readable trial names: the progress table, the dashboard, TensorBoard and the trial folders show a
trial's configuration id, not Tune's generated one."""

from __future__ import annotations

from taso_tune.tuning.trials import TrialSource


def trial_namers(source: TrialSource):
    """``(name, dirname)`` creators for the TuneConfig: a trial is named after its configuration
    (and its seed when each seed is a trial of its own); its folder adds Tune's trial id."""

    def name(trial) -> str:
        flat = source.flat_config(trial.config)
        seeds = flat["seeds"]
        suffix = f"_s{seeds[0]}" if source.spec.seeds_per_trial == 1 else ""
        return f"{flat.get('config_id', 'trial')}{suffix}"

    def dirname(trial) -> str:
        return f"{name(trial)}_{trial.trial_id}"

    return name, dirname
