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


def test_the_summary_and_the_export_say_so_for_an_edge_pick_only(tmp_path):
    """The fixture's picks (taso alpha 10, beta 0.5; adagrad lr 0.05) sit on the edges of its
    two-value grids; widened grids make the same picks interior."""
    import yaml
    from test_results import write_fixture_experiment

    from taso_tune.core.records import SPACE_FILE
    from taso_tune.results.experiment import load_experiment
    from taso_tune.results.export import defaults_from_experiment
    from taso_tune.results.summary import format_summary

    path = write_fixture_experiment(tmp_path)
    summary = format_summary(load_experiment(str(path)))
    assert "warning: alpha 10 is the smallest value tried; the best may lie beyond" in summary
    assert "warning: lr 0.05 is the largest value tried; the best may lie beyond" in summary
    exported = defaults_from_experiment(load_experiment(str(path)))["optimizers"]
    assert exported["taso"]["grid_edges"] == [
        "alpha 10 is the smallest value tried; the best may lie beyond",
        "beta 0.5 is the smallest value tried; the best may lie beyond",
    ]

    space = yaml.safe_load((path / SPACE_FILE).read_text())
    space["blocks"] = [
        {"optimizer": "taso", "alpha": {"grid": [5, 10, 25]}, "beta": {"grid": [0.3, 0.5, 0.7]}},
        {"optimizer": "adagrad", "lr": {"grid": [0.01, 0.05, 0.1]}},
    ]
    (path / SPACE_FILE).write_text(yaml.safe_dump(space))
    assert "warning:" not in format_summary(load_experiment(str(path))).replace(
        "warning: ASHA stopped seeds one by one", ""
    )
    exported = defaults_from_experiment(load_experiment(str(path)))["optimizers"]
    assert exported["taso"]["grid_edges"] == exported["adagrad"]["grid_edges"] == []
