"""The statistics rule over seeds, against numbers worked out by hand.

Quantiles used below (Student t, two-sided 95%): t_{0.975,2} = 4.302653, t_{0.975,3} = 3.182446.
For three values with sample std s the 95% half-width is 4.302653 · s / √3 = 2.484138 · s.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from taso_tune.core.errors import ConfigError
from taso_tune.stats.paired import bootstrap_interval, holm, paired_difference
from taso_tune.stats.seeds import (
    ACCURACY_RANGE,
    LOSS_RANGE,
    Interval,
    SeedSummary,
    at_chance_threshold,
    bounded,
    chance_level,
    diverged_score,
    format_interval,
    format_mean_std,
    pick,
    rank,
    status_text,
    summarize,
    t_interval,
    tied,
)
from taso_tune.stats.verdict import paired_verdict

T_975_DF2 = 4.302653
HALF_WIDTH_PER_STD_N3 = T_975_DF2 / math.sqrt(3)  # 2.484138


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-6)


# --- summarize ----------------------------------------------------------------------------------


def test_three_complete_seeds_mean_std_and_t_interval() -> None:
    s = summarize([0.97, 0.98, 0.99], planned=3)
    assert (s.planned, s.complete, s.diverged, s.missing, s.n) == (3, 3, 0, 0, 3)
    assert s.comparable
    assert s.mean == approx(0.98)
    assert s.std == approx(0.01)  # sample std: sqrt((0.01² + 0 + 0.01²) / 2)
    # half-width 4.302653 · 0.01 / √3 = 0.024841
    assert s.ci_low == approx(0.98 - 0.024841)
    assert s.ci_high == approx(0.98 + 0.024841)
    assert s.interval == Interval(s.ci_low, s.ci_high)
    assert format_mean_std(s.mean, s.std, s.n) == "98.00 ± 1.00 (n=3)"
    assert format_interval(s.ci_low, s.ci_high) == "[95.52, 100.48]"
    assert status_text(s) == ""


def test_t_interval_matches_table_quantiles() -> None:
    # n = 4: t_{0.975,3} = 3.182446, half-width 3.182446 · 0.02 / 2 = 0.031824
    assert t_interval(0.5, 0.02, 4) == (approx(0.468176), approx(0.531824))
    # 90%: t_{0.95,2} = 2.919986, half-width 2.919986 · 0.01 / √3 = 0.016859
    assert t_interval(0.98, 0.01, 3, confidence=0.90) == (approx(0.963141), approx(0.996859))


def test_one_seed_has_no_std_and_no_interval() -> None:
    s = summarize([0.986], planned=1)
    assert s.n == 1 and s.comparable
    assert s.mean == approx(0.986)
    assert s.std is None and s.ci_low is None and s.ci_high is None and s.interval is None
    assert format_mean_std(s.mean, s.std, s.n) == "98.60 ± — (n=1)"
    assert format_interval(s.ci_low, s.ci_high) == "—"
    record = json.loads(json.dumps(dataclasses.asdict(s)))
    assert record["std"] is None and record["ci_low"] is None and record["ci_high"] is None


def test_no_finished_seed_has_no_mean() -> None:
    s = summarize([], planned=3)
    assert (s.n, s.missing, s.mean, s.std, s.comparable) == (0, 3, None, None, False)
    assert format_mean_std(s.mean, s.std, s.n) == "— ± — (n=0)"
    assert status_text(s) == "not compared: 0 of 3 seeds"


def test_diverged_seeds_are_scored_at_chance_and_counted() -> None:
    chance = chance_level("accuracy", num_classes=10)
    assert chance == 0.1
    s = summarize([0.99], planned=3, diverged=2, chance=chance)
    assert (s.complete, s.diverged, s.missing, s.n, s.comparable) == (1, 2, 0, 3, True)
    # scores 0.99, 0.1, 0.1: mean 1.19 / 3; std |0.99 - 0.1| / √3 = 0.513842
    assert s.mean == approx((0.99 + 0.1 + 0.1) / 3)
    assert s.mean == approx(0.396667)
    assert s.std == approx(0.513842)
    # half-width 4.302653 · 0.89 / 3 = 1.276454
    assert (s.ci_low, s.ci_high) == (approx(0.396667 - 1.276454), approx(0.396667 + 1.276454))
    assert status_text(s) == "diverged 2/3; at chance 2/3"


def test_loss_chance_is_the_worst_value_seen() -> None:
    assert chance_level("loss", worst_value=2.5) == 2.5
    s = summarize([0.30, 0.32], planned=3, diverged=1, chance=2.5)
    assert s.mean == approx((0.30 + 0.32 + 2.5) / 3)  # 1.04


def test_the_one_rule_for_a_diverged_seed() -> None:
    """docs/results.md, "A diverged seed counts": 1 / classes for an accuracy, the worst value a
    complete seed reached for a loss; ln(classes), a uniform guess's loss, when none is known."""
    assert diverged_score("val_acc", num_classes=10, complete=[0.99, 0.98]) == 0.1
    assert diverged_score("test_acc", num_classes=4) == 0.25
    assert (
        diverged_score("val_acc", num_classes=None) == 0.0
    )  # classes unknown: nothing scores lower
    # the worst complete value, even below ln(10) = 2.302585; NaN and inf are no complete value
    assert diverged_score("val_loss", num_classes=10, complete=[0.3, 0.5, math.nan]) == 0.5
    assert diverged_score("test_loss", num_classes=10, complete=[0.3, math.inf, 3.1]) == 3.1
    assert diverged_score("train_loss", num_classes=10) == approx(math.log(10))
    assert diverged_score("val_loss", num_classes=None, complete=[0.4]) == 0.4
    with pytest.raises(ConfigError, match="num_classes"):
        diverged_score("val_loss", num_classes=None, complete=[math.nan])


def test_missing_and_diverged_status_text() -> None:
    s = summarize([0.9, 0.91], planned=5, diverged=1, chance=0.1)
    assert (s.n, s.missing, s.comparable) == (3, 2, False)
    assert status_text(s) == "not compared: 3 of 5 seeds; diverged 1/3; at chance 1/3"


def test_an_accuracy_interval_stays_inside_0_and_1() -> None:
    # 0.97, 0.98, 0.99: the t interval [0.955159, 1.004841] passes 1; an accuracy's stops at 1
    plain = summarize([0.97, 0.98, 0.99], planned=3)
    s = summarize([0.97, 0.98, 0.99], planned=3, chance=0.1, kind="accuracy")
    assert (s.ci_low, s.ci_high) == (approx(plain.ci_low), 1.0)
    assert (s.mean, s.std) == (plain.mean, plain.std)  # only the interval is cut
    # a seed at chance: 0.9, 0.92 and a diverged seed at 0.1, deviations 0.26, 0.28, -0.54 from
    # 0.64, std sqrt(0.4376 / 2) = 0.467761, t interval 0.64 ± 2.484138 · 0.467761 =
    # [-0.521982, 1.801982]; cut to [0, 1]
    low = summarize([0.9, 0.92], planned=3, diverged=1, chance=0.1, kind="accuracy")
    assert low.std == approx(0.467761)
    assert (low.ci_low, low.ci_high) == (0.0, 1.0)
    assert format_interval(low.ci_low, low.ci_high) == "[0.00, 100.00]"


def test_a_loss_interval_stops_at_0() -> None:
    # 0.01, 0.05, 0.30: mean 0.12, deviations -0.11, -0.07, 0.18, std sqrt(0.0494 / 2) = 0.157162,
    # t interval 0.12 ± 2.484138 · 0.157162 = [-0.270413, 0.510413]
    s = summarize([0.01, 0.05, 0.30], planned=3, kind="loss")
    assert s.std == approx(0.157162)
    assert (s.ci_low, s.ci_high) == (0.0, approx(0.12 + HALF_WIDTH_PER_STD_N3 * 0.157162))


def test_bounded_intersects_with_the_range() -> None:
    assert bounded(Interval(-0.2, 0.5), ACCURACY_RANGE) == (0.0, 0.5)
    assert bounded(Interval(0.2, 1.5), ACCURACY_RANGE) == (0.2, 1.0)
    assert bounded(Interval(0.2, 0.5), ACCURACY_RANGE) == (0.2, 0.5)
    assert bounded(Interval(-3.0, 2.0), LOSS_RANGE) == (0.0, 2.0)
    assert bounded(Interval(-3.0, 2.0), None) == (-3.0, 2.0)


def test_seeds_at_chance_are_counted_and_shown() -> None:
    # 10 classes: chance 0.1, threshold 0.1 + 0.1 · 0.9 = 0.19
    assert at_chance_threshold(0.1) == approx(0.19)
    assert at_chance_threshold(0.5) == approx(0.55)  # 2 classes
    s = summarize([0.95, 0.96, 0.18, 0.19], planned=5, diverged=1, chance=0.1, kind="accuracy")
    assert (s.n, s.diverged, s.at_chance) == (5, 1, 2)  # the diverged seed and 0.18; 0.19 is not
    assert status_text(s) == "diverged 1/5; at chance 2/5"
    # a loss has no chance threshold: only the diverged seed
    loss = summarize([0.2, 0.3], planned=3, diverged=1, chance=2.3, kind="loss")
    assert loss.at_chance == 1
    with pytest.raises(ConfigError, match="^chance:"):
        summarize([0.9, 0.8], planned=2, kind="accuracy")
    with pytest.raises(ConfigError, match="^kind:"):
        summarize([0.9, 0.8], planned=2, kind="f1")  # type: ignore[arg-type]


def test_format_mean_std_golden() -> None:
    assert format_mean_std(0.9762, 0.0080, 5) == "97.62 ± 0.80 (n=5)"
    assert format_interval(0.9663, 0.9861) == "[96.63, 98.61]"
    assert format_mean_std(0.3412, 0.0156, 4, scale=1, digits=3) == "0.341 ± 0.016 (n=4)"


# --- rank ---------------------------------------------------------------------------------------


def test_stable_configuration_beats_one_that_diverged_on_two_seeds() -> None:
    rows = rank(
        {
            "lucky": summarize(
                [0.99], planned=3, diverged=2, chance=chance_level("accuracy", num_classes=10)
            ),
            "stable": summarize([0.98, 0.98, 0.98], planned=3),
        },
        "max",
    )
    assert [(r.config_id, r.rank) for r in rows] == [("stable", 1), ("lucky", 2)]
    assert pick(rows).config_id == "stable"
    # summarised without its kind: only the diverged seeds count as at chance
    assert rows[1].status == "diverged 2/3; at chance 2/3"


def test_rank_orders_by_mean_and_names_no_verdict() -> None:
    rows = rank(
        {
            "b_low": summarize([0.90, 0.91, 0.92], planned=3),  # [0.885159, 0.934841]
            "a_top": summarize([0.97, 0.98, 0.99], planned=3),  # [0.955159, 1.004841]
            "c_mid": summarize([0.95, 0.96, 0.97], planned=3),  # [0.935159, 0.984841]
        },
        "max",
    )
    assert [(r.config_id, r.rank, r.compared) for r in rows] == [
        ("a_top", 1, True),
        ("c_mid", 2, True),
        ("b_low", 3, True),
    ]
    # c_mid's interval overlaps a_top's and b_low's does not: ranking reads neither as a verdict
    assert not any(hasattr(r, "verdict") for r in rows)


def test_rank_names_the_configurations_tied_on_the_mean() -> None:
    # accuracies on 143 images: the same three seeds' values summed in another order differ in
    # their last bit, and are still one mean
    first = summarize([140 / 143, 139 / 143, 138 / 143], planned=3)
    reordered = summarize([138 / 143, 140 / 143, 139 / 143], planned=3)
    assert first.mean != reordered.mean and tied(first.mean, reordered.mean)
    rows = rank(
        {
            "c_tie": reordered,
            "a_tie": first,
            "b_tie": summarize([139 / 143, 139 / 143, 139 / 143], planned=3),
            "d_below": summarize([139 / 143, 139 / 143, 138 / 143], planned=3),
            "e_unfinished": summarize([139 / 143, 139 / 143], planned=3),
        },
        "max",
    )
    # ranked by the last bit of each sum (c_tie's is one ulp above): the ties say it is no finding
    assert reordered.mean > first.mean
    assert {r.config_id: (r.rank, r.tied_with) for r in rows} == {
        "c_tie": (1, ("a_tie", "b_tie")),
        "a_tie": (2, ("c_tie", "b_tie")),
        "b_tie": (3, ("c_tie", "a_tie")),
        "d_below": (4, ()),  # one image of one seed less: not a tie
        "e_unfinished": (None, ()),
    }
    assert not tied(139 / 143, 138 / 143)


def test_configuration_with_a_missing_seed_is_never_ranked_nor_picked() -> None:
    summaries = {
        "incomplete": summarize([0.999, 0.999], planned=3),
        "finished": summarize([0.90, 0.91, 0.92], planned=3),
    }
    rows = rank(summaries, "max")
    assert [(r.config_id, r.rank, r.compared) for r in rows] == [
        ("finished", 1, True),
        ("incomplete", None, False),
    ]
    assert rows[1].status == "not compared: 2 of 3 seeds"
    assert pick(rows).config_id == "finished"


def test_no_comparable_configuration_means_no_pick() -> None:
    rows = rank({"b": summarize([0.9], planned=2), "a": summarize([], planned=2)}, "max")
    assert [(r.config_id, r.rank, r.status) for r in rows] == [
        ("a", None, "not compared: 0 of 2 seeds"),
        ("b", None, "not compared: 1 of 2 seeds"),
    ]
    assert pick(rows) is None
    assert rank({}, "max") == []


def test_min_mode_ranks_losses_lowest_first() -> None:
    worst = chance_level("loss", worst_value=2.5)
    rows = rank(
        {
            "high": summarize([0.50, 0.52, 0.54], planned=3),  # [0.470317, 0.569683]
            "low": summarize([0.30, 0.32, 0.34], planned=3),  # [0.270317, 0.369683]
            "blew_up": summarize([0.30, 0.32], planned=3, diverged=1, chance=worst),  # mean 1.04
        },
        "min",
    )
    assert [(r.config_id, r.rank) for r in rows] == [("low", 1), ("high", 2), ("blew_up", 3)]
    assert rows[2].summary.std == approx(1.264437)


def test_equal_means_rank_by_config_id_whatever_the_order_given() -> None:
    same = [0.95, 0.96, 0.97]
    for order in (["z", "a", "m"], ["m", "z", "a"]):
        rows = rank({c: summarize(same, planned=3) for c in order}, "max")
        assert [(r.config_id, r.rank) for r in rows] == [("a", 1), ("m", 2), ("z", 3)]


def test_single_seed_configurations_are_ranked_by_their_one_value() -> None:
    # with n = 1 there is no interval; the order is still the order of the means
    rows = rank({"a": summarize([0.9], planned=1), "b": summarize([0.5], planned=1)}, "max")
    assert [(r.config_id, r.rank) for r in rows] == [("a", 1), ("b", 2)]
    assert pick(rows).config_id == "a"


def test_rank_refuses_mixed_confidence_levels() -> None:
    with pytest.raises(ConfigError, match="confidence"):
        rank(
            {
                "a": summarize([0.9, 0.91], planned=2),
                "b": summarize([0.9, 0.91], planned=2, confidence=0.9),
            },
            "max",
        )


# --- paired comparisons -------------------------------------------------------------------------


def test_paired_difference_hand_computed() -> None:
    a = [0.95, 0.97, 0.99]
    b = [0.94, 0.95, 0.96]
    d = paired_difference(a, b)
    # differences 0.01, 0.02, 0.03: mean 0.02, std 0.01, half-width 0.024841
    assert d.n == 3 and d.confidence == 0.95
    assert d.mean == approx(0.02)
    assert d.std == approx(0.01)
    assert (d.ci_low, d.ci_high) == (approx(-0.004841), approx(0.044841))
    # t = 0.02 / (0.01 / √3) = 2√3; with df = 2 the t CDF is 1/2 + t / (2 √(2 + t²)), so the
    # two-sided p = 1 - t / √(2 + t²) = 1 - 2√3 / √14 = 0.074180
    assert d.p_value == approx(0.074180)


def test_paired_difference_pairs_mappings_by_seed() -> None:
    d = paired_difference({0: 0.95, 1: 0.97, 2: 0.99}, {2: 0.96, 0: 0.94, 1: 0.95})
    assert (d.mean, d.std, d.p_value) == (approx(0.02), approx(0.01), approx(0.074180))


def test_paired_difference_with_constant_differences() -> None:
    same = paired_difference([0.9, 0.8], [0.9, 0.8])
    assert (same.mean, same.std, same.ci_low, same.ci_high, same.p_value) == (
        0.0,
        0.0,
        0.0,
        0.0,
        1.0,
    )
    shifted = paired_difference([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    assert (shifted.mean, shifted.std) == (1.0, 0.0)
    assert math.isnan(shifted.p_value) and shifted.undefined  # no spread: the t-test is undefined
    # one test image apart on every seed: equal differences up to rounding, the same answer
    image = paired_difference([0.9013, 0.9138, 0.8955], [0.9012, 0.9137, 0.8954])
    assert image.std == 0.0 and image.undefined and image.mean == approx(0.0001)


@pytest.mark.parametrize(
    ("a", "b", "field"),
    [
        ([0.9, 0.8, 0.7], [0.9, 0.8], "seeds"),
        ({0: 0.9, 1: 0.8}, {0: 0.9, 2: 0.8}, "seeds"),
        ({0: 0.9, 1: 0.8}, [0.9, 0.8], "b"),
        ([0.9], [0.8], "n"),
        ([0.9, float("nan")], [0.8, 0.7], "a"),
    ],
)
def test_paired_difference_refuses_unpaired_seeds(a, b, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}:"):
        paired_difference(a, b)


def test_holm_hand_computed() -> None:
    # sorted 0.01, 0.03, 0.04 -> 3·0.01 = 0.03, 2·0.03 = 0.06, max(0.06, 1·0.04) = 0.06
    assert holm([0.01, 0.04, 0.03]) == [approx(0.03), approx(0.06), approx(0.06)]
    # sorted 0.01, 0.4, 0.5 -> 0.03, 0.8, max(0.8, 0.5) = 0.8 (monotone)
    assert holm([0.5, 0.4, 0.01]) == [approx(0.8), approx(0.8), approx(0.03)]
    # 2·0.6 = 1.2 capped at 1, then max(1, 0.7) = 1
    assert holm([0.6, 0.7]) == [1.0, 1.0]
    assert holm([0.2]) == [0.2]
    assert holm([]) == []


@pytest.mark.parametrize("bad", [[0.1, 1.5], [-0.1], [float("nan")]])
def test_holm_refuses_non_probabilities(bad: list[float]) -> None:
    with pytest.raises(ConfigError, match="^p_values:"):
        holm(bad)


@pytest.mark.parametrize(
    ("p", "difference", "mode", "expected"),
    [
        (0.03, 0.02, "max", "better"),
        (0.03, -0.02, "max", "worse"),
        (0.03, -0.02, "min", "better"),
        (0.03, 0.02, "min", "worse"),
        (0.06, 0.02, "max", "no difference shown"),
        (0.05, 0.02, "max", "no difference shown"),  # the level itself is not significant
        (float("nan"), 0.02, "max", "no difference shown"),
        (0.0, 0.0, "max", "no difference shown"),
    ],
)
def test_paired_verdict(p: float, difference: float, mode: str, expected: str) -> None:
    assert paired_verdict(p, difference, mode=mode) == expected


def test_paired_study_end_to_end() -> None:
    # two comparisons over the same seeds, adjusted together
    base = [0.94, 0.95, 0.96]
    p_raw = [
        paired_difference([0.95, 0.97, 0.99], base).p_value,  # 0.074180
        paired_difference([0.94, 0.95, 0.96], base).p_value,  # identical: 1
    ]
    adjusted = holm(p_raw)
    assert adjusted == [approx(0.148360), approx(1.0)]
    assert paired_verdict(adjusted[0], 0.02, mode="max") == "no difference shown"


# --- bootstrap ----------------------------------------------------------------------------------


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    # irregular values, so resampled means rarely coincide and another seed moves the percentiles
    values = [0.9712, 0.9803, 0.9917, 0.9634, 0.9551, 0.9768, 0.9849, 0.9695]
    mean = sum(values) / len(values)  # 0.974113
    first = bootstrap_interval(values, resamples=2000, seed=7)
    assert bootstrap_interval(values, resamples=2000, seed=7) == first
    assert bootstrap_interval(values, resamples=2000, seed=8) != first
    assert min(values) <= first.low < mean < first.high <= max(values)
    median = bootstrap_interval(values, statistic=np.median, resamples=2000, seed=7)
    assert min(values) <= median.low <= 0.9740 <= median.high <= max(values)  # median 0.97400


def test_bootstrap_coverage_is_near_nominal() -> None:
    rng = np.random.default_rng(2024)
    true_mean, reps, covered = 0.9, 200, 0
    for rep in range(reps):
        sample = rng.normal(true_mean, 0.02, size=20)
        low, high = bootstrap_interval(sample, resamples=999, seed=rep)
        covered += low <= true_mean <= high
    # the percentile interval runs a little narrow at n = 20; 200 draws spread about ±0.015
    assert 0.88 <= covered / reps <= 0.99


def test_t_interval_coverage_is_nominal() -> None:
    rng = np.random.default_rng(11)
    samples = rng.normal(0.5, 0.1, size=(4000, 5))
    covered = sum(
        s.ci_low <= 0.5 <= s.ci_high for s in (summarize(row, planned=5) for row in samples)
    )
    assert 0.94 <= covered / len(samples) <= 0.96  # binomial sd 0.0034 around 0.95


def test_bootstrap_needs_two_seeds() -> None:
    with pytest.raises(ConfigError, match="^values:"):
        bootstrap_interval([0.9])


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"values": [0.9, 0.8], "planned": 1}, "planned"),
        ({"values": [0.9], "planned": 0}, "planned"),
        ({"values": [0.9], "planned": 2, "diverged": 1}, "chance"),
        ({"values": [0.9], "planned": 2, "diverged": 1, "chance": float("inf")}, "chance"),
        ({"values": [0.9], "planned": 2, "diverged": -1}, "diverged"),
        ({"values": [0.9, float("nan")], "planned": 2}, "values"),
        ({"values": [0.9], "planned": 1, "confidence": 1.0}, "confidence"),
        ({"values": [0.9], "planned": 1, "confidence": "95%"}, "confidence"),
    ],
)
def test_summarize_refuses_bad_input(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}:"):
        summarize(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"kind": "accuracy"}, "num_classes"),
        ({"kind": "accuracy", "num_classes": 1}, "num_classes"),
        ({"kind": "loss"}, "worst_value"),
        ({"kind": "loss", "worst_value": float("nan")}, "worst_value"),
        ({"kind": "f1", "num_classes": 10}, "kind"),
    ],
)
def test_chance_level_refuses_bad_input(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{field}:"):
        chance_level(**kwargs)


def test_unknown_mode_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"^mode: .*'maximize'.*valid choices: max, min"):
        rank({"a": summarize([0.9], planned=1)}, "maximize")
    with pytest.raises(ConfigError, match="^mode:"):
        paired_verdict(0.01, 0.1, mode="up")


def test_summary_is_frozen() -> None:
    s = summarize([0.9, 0.92], planned=2)
    assert isinstance(s, SeedSummary)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.mean = 1.0  # type: ignore[misc]
