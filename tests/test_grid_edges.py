"""The grid-edge warning: a pick on the edge of its family's searched range says so; an interior
pick says nothing."""

from __future__ import annotations

from sweep_helpers import write_space

from taso_tune.results.grid_edges import edge_warnings
from taso_tune.spaces import load_space


def _spec(tmp_path, blocks, **top):
    return load_space(str(write_space(tmp_path / "space.yaml", blocks, **top)))


def test_a_grid_pick_on_either_edge_warns_and_an_interior_one_does_not(tmp_path):
    spec = _spec(tmp_path, [{"optimizer": "taso", "lr": {"grid": [0.02, 0.05, 0.1]}}])
    assert edge_warnings(spec, "taso", {"lr": 0.1}) == [
        "lr 0.1 is the largest value tried; the best may lie beyond"
    ]
    assert edge_warnings(spec, "taso", {"lr": 0.02}) == [
        "lr 0.02 is the smallest value tried; the best may lie beyond"
    ]
    assert edge_warnings(spec, "taso", {"lr": 0.05}) == []


def test_a_family_searched_over_several_blocks_uses_their_union(tmp_path):
    spec = _spec(
        tmp_path,
        [
            {"optimizer": "amsgrad", "lr": {"grid": [0.0005, 0.001]}},
            {"optimizer": "amsgrad", "lr": {"grid": [0.002, 0.005]}},
            {"optimizer": "adam", "lr": {"grid": [0.001, 0.01]}},
        ],
    )
    assert edge_warnings(spec, "amsgrad", {"lr": 0.001}) == []
    assert edge_warnings(spec, "amsgrad", {"lr": 0.005}) == [
        "lr 0.005 is the largest value tried; the best may lie beyond"
    ]
    assert edge_warnings(spec, "adam", {"lr": 0.001}) == [
        "lr 0.001 is the smallest value tried; the best may lie beyond"
    ]


def test_a_distribution_warns_in_its_outer_five_percent_on_its_own_scale(tmp_path):
    spec = _spec(
        tmp_path,
        [
            {
                "optimizer": "taso",
                "lr": {"loguniform": [0.001, 1.0]},
                "beta": {"uniform": [0.5, 0.9]},
            }
        ],
        search={"type": "random", "num_samples": 4},
    )
    # log scale: 0.7 sits at 95% of the way from 0.001 to 1, 0.5 at 90%
    assert edge_warnings(spec, "taso", {"lr": 0.75, "beta": 0.7}) == [
        "lr 0.75 is near the top of the searched range [0.001, 1]; the best may lie beyond"
    ]
    assert edge_warnings(spec, "taso", {"lr": 0.5, "beta": 0.505}) == [
        "beta 0.505 is near the bottom of the searched range [0.5, 0.9]; the best may lie beyond"
    ]


def test_fixed_fields_and_other_families_never_warn(tmp_path):
    spec = _spec(tmp_path, [{"optimizer": "taso", "lr": 0.05, "beta": {"grid": [0.5, 0.7]}}])
    assert edge_warnings(spec, "taso", {"lr": 0.05, "beta": 0.6}) == []
    assert edge_warnings(spec, "rmsprop", {"lr": 0.05}) == []
