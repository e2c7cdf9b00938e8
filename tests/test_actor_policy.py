"""``reuse_actors: auto``: trials that plan little training share actor processes, longer ones get
an actor each (named after the trial in the Ray dashboard); ``true`` and ``false`` choose alone."""

from __future__ import annotations

import pytest

from taso_tune.spaces import load_space_dict
from taso_tune.training.data.sets import load_dataset
from taso_tune.tuning.actors import SHORT_TRIAL_IMAGES, actor_policy, planned_images
from taso_tune.tuning.trainable import data_key
from taso_tune.tuning.trials import trial_source

DIGITS_TRAIN = 1294  # digits' training split at the default validation fraction


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _policy(digits, **space):
    spec = load_space_dict(
        {
            "name": "actors",
            "train": {"model": "lenet5", "dataset": "digits", "epochs": 15},
            "scheduler": "none",
            "blocks": [{"optimizer": "taso"}, {"optimizer": "adagrad", "epochs": 20}],
            **space,
        }
    )
    source = trial_source(spec)
    datasets = {data_key(flat): digits for flat in source.fixed_configs()}
    return planned_images(source, datasets), actor_policy(source, datasets)


def test_short_trials_reuse_actors_by_default(digits) -> None:
    assert digits.sizes()["train"] == DIGITS_TRAIN
    images, policy = _policy(digits, seeds=3)
    assert images == DIGITS_TRAIN * 20 * 3  # the longest block, all 3 seeds in one trial
    assert policy.reuse is True
    assert f"{images:,} training images each, under {SHORT_TRIAL_IMAGES:,}" in policy.why


def test_long_trials_get_an_actor_each(digits) -> None:
    images, policy = _policy(digits, seeds=3, train={"dataset": "digits", "epochs": 300})
    assert images == DIGITS_TRAIN * 300 * 3 >= SHORT_TRIAL_IMAGES
    assert policy.reuse is False and "one per trial, named after it" in policy.why


def test_a_trial_of_one_seed_plans_one_seeds_images(digits) -> None:
    images, policy = _policy(
        digits,
        seeds=5,
        seeds_per_trial=1,
        train={"dataset": "digits", "epochs": 300},
        blocks=[{"optimizer": "taso"}],
    )
    assert images == DIGITS_TRAIN * 300 and policy.reuse is True


@pytest.mark.parametrize("chosen", [True, False])
def test_the_space_choice_wins(digits, chosen: bool) -> None:
    short = _policy(digits, reuse_actors=chosen)[1]
    long = _policy(digits, reuse_actors=chosen, train={"dataset": "digits", "epochs": 1000})[1]
    assert short.reuse is long.reuse is chosen
    assert f"(reuse_actors: {str(chosen).lower()})" in short.why


def test_an_experiment_saved_before_auto_resumes_as_it_ran(tmp_path) -> None:
    """A space file written when the default was one actor per trial has no ``reuse_actors``: its
    resume keeps an actor per trial; a space file written now records ``auto``."""
    import yaml
    from test_results import write_fixture_experiment

    from taso_tune.core.records import SPACE_FILE
    from taso_tune.experiment.reader import read_space

    experiment = write_fixture_experiment(tmp_path)
    assert "reuse_actors" not in yaml.safe_load((experiment / SPACE_FILE).read_text())
    saved = read_space(str(experiment))
    assert saved.reuse_actors is False
    data = {**saved.to_dict(), "reuse_actors": "auto"}
    (experiment / SPACE_FILE).write_text(yaml.safe_dump(data))
    assert read_space(str(experiment)).reuse_actors == "auto"
