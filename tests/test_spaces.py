"""Search-space files: the paper's grids, the examples, expansion, Optuna, overrides and every error."""

from __future__ import annotations

import ast
import math
import pickle
import re
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from taso_tune.core.errors import ConfigError
from taso_tune.core.records import METRICS
from taso_tune.spaces import (
    OptunaSpace,
    SchedulerSpec,
    SearchSpec,
    SweepSpec,
    load_space,
    load_space_dict,
    resolve_optuna_params,
    with_overrides,
)
from taso_tune.training.run import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SPACES = ROOT / "search_spaces"
ALL_FILES = sorted(
    p for p in SPACES.rglob("*.yaml") if "defaults" not in p.parts
)  # defaults are not spaces
LISTED_FILES = [
    p for p in ALL_FILES if "optuna" not in p.name
]  # Optuna spaces have no list of configurations
LABELS = ("config_id", "block")

# (file, configurations, model, dataset, epochs): Section IV-A and Tables I-X of the paper.
PAPER = [
    ("table1_adagrad.yaml", 5, "vgg19", "cifar10", 100),
    ("table2_rmsprop.yaml", 12, "vgg19", "cifar10", 100),
    ("table3_adam.yaml", 12, "vgg19", "cifar10", 100),
    ("table4_taso_lr.yaml", 21, "vgg19", "cifar10", 100),
    ("table5_taso_alpha_beta.yaml", 9, "vgg19", "cifar10", 100),
    ("table6_final.yaml", 4, "vgg19", "cifar10", 100),
    ("table7_final_25_epochs.yaml", 4, "vgg19", "cifar10", 25),
    ("table8_vgg19_cifar100.yaml", 4, "vgg19", "cifar100", 100),
    ("table9_resnet18_cifar10.yaml", 4, "resnet18", "cifar10", 100),
    ("table10_lenet5_mnist.yaml", 4, "lenet5", "mnist", 100),
]
PAPER_DEFAULTS = [
    {"optimizer": "adagrad", "lr": 0.05},
    {"optimizer": "rmsprop", "lr": 0.0005, "centered": False},
    {"optimizer": "amsgrad", "lr": 0.0005},
    {"optimizer": "taso", "lr": 0.05, "momentum": 0.9, "alpha": 25, "beta": 0.7},
]


def train_fields(flat: dict) -> dict:
    return {k: v for k, v in flat.items() if k not in LABELS}


def space(blocks: list, **top) -> SweepSpec:
    """A small valid space (LeNet5 on digits, 5 epochs) with ``blocks`` and top-level overrides."""
    data = {
        "name": "t",
        "train": {"model": "lenet5", "dataset": "digits", "epochs": 5},
        "blocks": blocks,
    }
    return load_space_dict({**data, **top})


# --- the shipped files -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "file, n_configs, model, dataset, epochs", PAPER, ids=[p[0] for p in PAPER]
)
def test_paper_files_match_the_tables(file, n_configs, model, dataset, epochs):
    spec = load_space(str(SPACES / "paper" / file))
    assert len(spec.configurations()) == n_configs
    assert len(spec.trials()) == n_configs * 5
    assert spec.seeds == 5 and spec.epochs == epochs
    assert (spec.scheduler.type, spec.search.type, spec.metric, spec.mode) == (
        "none",
        "grid",
        "val_acc",
        "max",
    )
    assert spec.train == {
        "model": model,
        "dataset": dataset,
        "data_root": "data",
        "epochs": epochs,
        "batch_size": 64,
    }
    header = (SPACES / "paper" / file).read_text().splitlines()[0]
    table = file.split("_")[0].removeprefix("table")
    roman = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"][int(table) - 1]
    assert header.startswith(f"# Table {roman}:")
    assert (
        "test_acc" in (SPACES / "paper" / file).read_text()
    )  # the note on the paper's test-set tuning


def test_paper_grids_are_the_papers():
    def grid(file, key):
        return [c[key] for c in load_space(str(SPACES / "paper" / file)).configurations()]

    assert grid("table1_adagrad.yaml", "lr") == [0.1, 0.05, 0.01, 0.0075, 0.005]
    rms = load_space(str(SPACES / "paper" / "table2_rmsprop.yaml")).configurations()
    assert {(c["lr"], c["centered"]) for c in rms} == {
        (lr, centered)
        for lr in (0.01, 0.005, 0.001, 0.0005, 0.0003, 0.0001)
        for centered in (False, True)
    }
    adam = load_space(str(SPACES / "paper" / "table3_adam.yaml")).configurations()
    assert {(c["optimizer"], c["lr"]) for c in adam} == {
        (o, lr)
        for o in ("adam", "amsgrad")
        for lr in (0.005, 0.001, 0.0005, 0.0003, 0.0001, 0.00005)
    }
    taso_lr = load_space(str(SPACES / "paper" / "table4_taso_lr.yaml")).configurations()
    lrs = [2, 1, 0.5, 0.25, 0.05, 0.01, 0.001]
    variants = [(0.0, False), (0.9, False), (0.9, True)]
    seen = [(c["optimizer"], c["lr"], c["momentum"], c.get("nesterov", False)) for c in taso_lr]
    assert seen == [("sgd", lr, m, n) for m, n in variants for lr in lrs]
    ab = load_space(str(SPACES / "paper" / "table5_taso_alpha_beta.yaml")).configurations()
    assert [(c["alpha"], c["beta"]) for c in ab] == [
        (a, b) for a in (10, 25, 50) for b in (0.3, 0.5, 0.7)
    ]
    assert all(c["optimizer"] == "taso" and c["lr"] == 0.05 and c["momentum"] == 0.9 for c in ab)


@pytest.mark.parametrize("file", [p[0] for p in PAPER if int(p[0].split("_")[0][5:]) >= 6])
def test_final_tables_use_the_four_defaults(file):
    configs = load_space(str(SPACES / "paper" / file)).configurations()
    spec_train = load_space(str(SPACES / "paper" / file)).train
    assert [train_fields(c) for c in configs] == [{**spec_train, **d} for d in PAPER_DEFAULTS]
    assert [c["config_id"] for c in configs] == ["adagrad", "rmsprop", "amsgrad", "taso"]


def test_quickstart():
    spec = load_space(str(SPACES / "quickstart.yaml"))
    assert (len(spec.configurations()), len(spec.trials()), spec.seeds) == (13, 39, 3)
    assert (
        spec.train["model"] == "lenet5" and spec.train["dataset"] == "digits" and spec.epochs == 10
    )
    # no early stopping: ASHA would judge TASO before its decay
    assert spec.scheduler == SchedulerSpec("none")
    assert (spec.resources.cpus, spec.resources.gpus, spec.max_concurrent) == (1, None, 2)
    counts = {
        o: sum(c["optimizer"] == o for c in spec.configurations())
        for o in ("taso", "amsgrad", "rmsprop", "adagrad")
    }
    assert counts == {"taso": 6, "amsgrad": 3, "rmsprop": 2, "adagrad": 2}


def test_beyond_gives_every_schedule_the_same_lr_grid():
    spec = load_space(str(SPACES / "beyond.yaml"))
    configs = spec.configurations()
    assert (len(configs), spec.seeds, spec.epochs, spec.scheduler.type) == (15, 3, 20, "none")
    by_optimizer: dict[str, list[float]] = {}
    for c in configs:
        by_optimizer.setdefault(c["optimizer"], []).append(c["lr"])
    assert set(by_optimizer) == {"taso", "sgd_cosine", "sgd_linear", "sgd_step", "sgd_wsd"}
    assert len({tuple(v) for v in by_optimizer.values()}) == 1


def test_optuna_example():
    spec = load_space(str(SPACES / "examples" / "optuna_new_pair.yaml"))
    assert (spec.search.type, spec.search.num_samples) == ("optuna", 12)
    block = spec.to_dict()["blocks"][0]
    assert block["lr"] == {"loguniform": [0.005, 0.5]} and block["beta"] == {"uniform": [0.5, 0.85]}
    with pytest.raises(ConfigError, match="optuna"):
        spec.configurations()


@pytest.mark.parametrize(
    "path", LISTED_FILES, ids=[str(p.relative_to(SPACES)) for p in LISTED_FILES]
)
def test_every_shipped_configuration_is_a_valid_train_config(path):
    spec = load_space(str(path))
    trials = spec.trials()
    for trial in trials:
        assert TrainConfig.from_flat(train_fields(trial)).seed == trial["seed"]
    ids = [c["config_id"] for c in spec.configurations()]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9._=+-]+", i) for i in ids)


@pytest.mark.parametrize("path", ALL_FILES, ids=[str(p.relative_to(SPACES)) for p in ALL_FILES])
def test_to_dict_round_trips_through_yaml(path):
    spec = load_space(str(path))
    assert load_space_dict(spec.to_dict()) == spec
    text = yaml.safe_dump(spec.to_dict(), sort_keys=False)
    again = load_space_dict(yaml.safe_load(text), source="saved.yaml")
    assert again == spec and again.source == "saved.yaml"
    if spec.search.type != "optuna":
        assert again.trials() == spec.trials()


@pytest.mark.parametrize(
    "module", sorted(p.name for p in (ROOT / "taso_tune" / "spaces").glob("*.py"))
)
def test_spaces_modules_import_neither_ray_nor_optuna(module):
    tree = ast.parse((ROOT / "taso_tune" / "spaces" / module).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {name for name in imported if name.split(".")[0] in ("ray", "optuna")}


# --- expansion -------------------------------------------------------------------------------------


def test_config_ids_name_the_varied_fields_only():
    spec = space(
        [
            {
                "optimizer": "taso",
                "lr": {"grid": [0.05, 0.1]},
                "alpha": 25,
                "beta": {"grid": [0.5, 0.7]},
            }
        ]
    )
    assert [c["config_id"] for c in spec.configurations()] == [
        "taso_lr=0.05_beta=0.5",
        "taso_lr=0.05_beta=0.7",
        "taso_lr=0.1_beta=0.5",
        "taso_lr=0.1_beta=0.7",
    ]
    assert all(c["alpha"] == 25 and c["block"] == 0 for c in spec.configurations())


def test_colliding_ids_name_the_fixed_field_that_tells_them_apart():
    spec = space(
        [
            {"optimizer": "sgd", "lr": {"grid": [0.1, 0.2]}, "momentum": 0.0},
            {"optimizer": "sgd", "lr": {"grid": [0.1, 0.3]}, "momentum": 0.9},
        ]
    )
    assert [c["config_id"] for c in spec.configurations()] == [
        "sgd_lr=0.1_momentum=0.0",
        "sgd_lr=0.2",
        "sgd_lr=0.1_momentum=0.9",
        "sgd_lr=0.3",
    ]


def test_colliding_ids_with_the_same_fixed_fields_get_the_block_index():
    spec = space(
        [
            {"optimizer": "sgd", "lr": {"grid": [0.1, 0.2]}},
            {"optimizer": "sgd", "lr": {"grid": [0.1, 0.3]}},
        ]
    )
    assert [c["config_id"] for c in spec.configurations()] == [
        "sgd_lr=0.1_b0",
        "sgd_lr=0.2",
        "sgd_lr=0.1_b1",
        "sgd_lr=0.3",
    ]


def test_blocks_are_a_union_not_a_product():
    spec = space(
        [
            {"optimizer": "taso", "lr": {"grid": [0.05, 0.1]}, "beta": 0.6},
            {
                "optimizer": {"grid": ["adam", "amsgrad"]},
                "lr": 0.001,
                "epochs": 8,
                "batch_size": {"grid": [32, 64]},
            },
        ]
    )
    configs = spec.configurations()
    assert len(configs) == 2 + 4
    assert [c["block"] for c in configs] == [0, 0, 1, 1, 1, 1]
    assert all("beta" not in c and c["epochs"] == 8 for c in configs[2:])  # no leaks between blocks
    assert all(c["epochs"] == 5 and "batch_size" not in c for c in configs[:2])
    assert [(c["optimizer"], c["batch_size"]) for c in configs[2:]] == [
        ("adam", 32),
        ("adam", 64),
        ("amsgrad", 32),
        ("amsgrad", 64),
    ]  # row-major, keys as written
    assert spec.epochs == 8
    assert [
        (t["config_id"], t["seed"]) for t in space(spec.to_dict()["blocks"], seeds=2).trials()[:3]
    ] == [("taso_lr=0.05", 0), ("taso_lr=0.05", 1), ("taso_lr=0.1", 0)]


def test_random_search_is_deterministic_and_in_bounds():
    blocks = [
        {
            "optimizer": "taso",
            "momentum": {"grid": [0.0, 0.9]},
            "lr": {"loguniform": [0.001, 0.5]},
            "beta": {"uniform": [0.5, 0.85]},
            "alpha": {"choice": [10, 25, 50]},
        },
        {"optimizer": "amsgrad", "lr": 0.001},
    ]
    spec = space(blocks, search={"type": "random", "num_samples": 20, "seed": 3})
    configs = spec.configurations()
    assert len(configs) == 2 * 20 + 1  # a block with nothing to draw gives one configuration
    assert (
        configs
        == space(blocks, search={"type": "random", "num_samples": 20, "seed": 3}).configurations()
    )
    other = space(blocks, search={"type": "random", "num_samples": 20, "seed": 4}).configurations()
    assert [c["lr"] for c in other[:40]] != [c["lr"] for c in configs[:40]]
    drawn = configs[:40]
    assert [c["momentum"] for c in drawn] == [0.0] * 20 + [0.9] * 20
    assert all(
        0.001 <= c["lr"] <= 0.5 and 0.5 <= c["beta"] <= 0.85 and c["alpha"] in (10, 25, 50)
        for c in drawn
    )
    assert (
        min(c["lr"] for c in drawn) < 0.01 < max(c["lr"] for c in drawn)
    )  # log-spread, not uniform
    assert len({c["config_id"] for c in configs}) == len(configs)
    for c in configs:
        TrainConfig.from_flat(train_fields(c))


def test_yaml_reads_exponent_floats(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\ntrain: {epochs: 3}\nscheduler: none\nblocks:\n  - {optimizer: adam, lr: 5e-4}\n"
    )
    assert load_space(str(path)).configurations()[0]["lr"] == 0.0005


@pytest.mark.parametrize(
    "epochs, eta, r",
    [(15, 3, None), (100, 3, None), (100, 3, 2), (20, 2, 1), (7, 1.5, 1), (2, 3, None)],
)
def test_budget_sh_rungs(epochs, eta, r):
    scheduler = SchedulerSpec("budget-sh", reduction_factor=eta, min_epochs=r)
    rungs = scheduler.rung_epochs(epochs)
    assert rungs[0] == (r or max(1, int(epochs // eta**2))) and rungs[-1] == epochs
    assert all(isinstance(b, int) for b in rungs) and all(a < b for a, b in pairwise(rungs))
    assert all(b2 <= math.ceil(b1 * eta) + 1 for b1, b2 in pairwise(rungs[:-1]))


def test_budget_sh_examples():
    assert SchedulerSpec("budget-sh").rung_epochs(100) == [11, 33, 100]
    assert SchedulerSpec("budget-sh", min_epochs=2).rung_epochs(15) == [2, 6, 15]
    assert SchedulerSpec("budget-sh", min_epochs=4).rung_epochs(4) == [4]


def test_budget_sh_rung_specs():
    """Each rung is the same space with the rung's epochs and no early stopping."""
    spec = space(
        [{"optimizer": "taso", "lr": {"grid": [0.05, 0.1]}}],
        scheduler={"type": "budget-sh", "reduction_factor": 2, "min_epochs": 2},
    )
    for budget in spec.scheduler.rung_epochs(spec.epochs):
        rung = replace(
            with_overrides(spec, epochs=budget), scheduler=replace(spec.scheduler, type="none")
        )
        assert rung.scheduler == SchedulerSpec("none") and rung.epochs == budget
        assert [c["config_id"] for c in rung.configurations()] == [
            c["config_id"] for c in spec.configurations()
        ]
    assert replace(SearchSpec("random", num_samples=4, seed=2), type="grid") == SearchSpec("grid")


# --- Optuna ----------------------------------------------------------------------------------------


def test_optuna_space_with_a_real_study():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_space(str(SPACES / "examples" / "optuna_new_pair.yaml"))
    define = pickle.loads(
        pickle.dumps(OptunaSpace(spec))
    )  # Ray pickles the searcher with its space
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    seen_blocks = set()
    for _ in range(12):
        trial = study.ask()
        constant = define(trial)
        assert "lr" not in constant and constant["model"] == "lenet5"
        flat = resolve_optuna_params(spec, {**constant, **trial.params})
        seen_blocks.add(flat["block"])
        assert flat["optimizer"] == ("taso", "amsgrad")[flat["block"]]
        low, high = spec.blocks[flat["block"]]["lr"].options
        assert low <= flat["lr"] <= high and flat["config_id"].startswith(
            f"{flat['optimizer']}_lr="
        )
        config = TrainConfig.from_flat({**train_fields(flat), "seed": 1})
        assert config.hparams["lr"] == flat["lr"]
        study.tell(trial, flat["lr"])
    assert seen_blocks == {0, 1}
    assert set(study.trials[0].params) <= {"block", "b0.lr", "b0.beta", "b1.lr"}


def test_optuna_single_block_and_categoricals():
    optuna = pytest.importorskip("optuna")
    spec = space(
        [
            {
                "optimizer": {"choice": ["adam", "amsgrad"]},
                "lr": {"grid": [0.001, 0.002]},
                "eps": 1e-7,
            }
        ],
        search={"type": "optuna", "num_samples": 4},
    )
    trial = optuna.create_study().ask()
    constant = OptunaSpace(spec)(trial)
    assert constant["block"] == 0 and constant["eps"] == 1e-7 and "optimizer" not in constant
    flat = resolve_optuna_params(spec, {**trial.params, **constant})
    assert (
        flat["optimizer"] in ("adam", "amsgrad")
        and flat["lr"] in (0.001, 0.002)
        and flat["eps"] == 1e-7
    )
    assert flat["config_id"] == f"{flat['optimizer']}_lr={flat['lr']}"
    with pytest.raises(ConfigError, match="block"):
        resolve_optuna_params(spec, {"block": 3})
    with pytest.raises(ConfigError, match="b0.lr"):
        resolve_optuna_params(spec, {"block": 0, "b0.optimizer": "adam"})
    with pytest.raises(ConfigError, match="optuna"):
        OptunaSpace(load_space(str(SPACES / "quickstart.yaml")))


# --- overrides -------------------------------------------------------------------------------------


def test_with_overrides():
    spec = load_space(str(SPACES / "quickstart.yaml"))
    quick = with_overrides(
        spec, epochs=4, seeds=1, max_concurrent=1, cpus=2, gpus=0.5, name="smoke"
    )
    assert (quick.epochs, quick.seeds, quick.max_concurrent, quick.name) == (4, 1, 1, "smoke")
    assert (quick.resources.cpus, quick.resources.gpus, quick.source) == (2, 0.5, spec.source)
    assert len(quick.trials()) == 13 and all(t["epochs"] == 4 for t in quick.trials())
    assert spec.epochs == 10  # the original is unchanged
    plain = with_overrides(spec, scheduler="none")
    assert plain.scheduler == SchedulerSpec("none") and plain.to_dict()["scheduler"] == {
        "type": "none"
    }
    assert with_overrides(spec, scheduler="budget-sh").scheduler.reduction_factor == 3
    assert (
        with_overrides(spec, epochs=2, scheduler="none").epochs == 2
    )  # valid together, not one by one
    with pytest.raises(
        ConfigError, match=r"--epochs, --scheduler: leaves scheduler.grace_period = 1 invalid"
    ):
        with_overrides(
            load_space(str(SPACES / "beyond.yaml")), epochs=1, scheduler="asha"
        )  # wrong only together
    blocks = space([{"optimizer": "taso", "epochs": 9}, {"optimizer": "adam"}])
    assert blocks.epochs == 9 and with_overrides(blocks, epochs=3).epochs == 3


@pytest.mark.parametrize(
    "overrides, flag, text",
    [
        ({"epochs": 2}, "--epochs", "scheduler.grace_period = 2"),
        ({"epochs": 0}, "--epochs", "integer >= 1"),
        ({"seeds": 0}, "--seeds", "integer >= 1"),
        ({"scheduler": "hyperband"}, "--scheduler", "top-k, none, budget-sh"),
        ({"gpus": -1}, "--gpus-per-trial", ">= 0"),
        ({"cpus": 2.5}, "--cpus-per-trial", "whole number"),
        ({"name": "a b"}, "--name", "letters"),
    ],
)
def test_with_overrides_errors_name_the_flag(overrides, flag, text):
    spec = load_space(str(SPACES / "early_stopping.yaml"))  # ASHA, grace period 2
    with pytest.raises(ConfigError) as info:
        with_overrides(spec, **overrides)
    message = str(info.value)
    assert message.startswith(f"{spec.source}: {flag}:") and text in message
    assert repr(next(iter(overrides.values()))) in message


# --- malformed files -------------------------------------------------------------------------------

GOOD = """name: t
train:
  model: lenet5
  dataset: digits
  epochs: 5
scheduler: {type: asha, grace_period: 2}
blocks:
  - optimizer: taso
    lr: {grid: [0.05, 0.1]}
    beta: 0.7
"""


def edit(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


# (id, file text, field path, bad value as it appears in the message, another text the message holds)
MALFORMED = [
    (
        "unknown top-level key",
        GOOD + "epochz: 3\n",
        "epochz",
        "3",
        "valid choices: name, description",
    ),
    (
        "unknown block field",
        GOOD + "    momentm: 0.9\n",
        "blocks[0].momentm",
        "0.9",
        "(did you mean 'momentum'?) (got 0.9); valid choices: alpha, beta, lr",
    ),
    (
        "unknown optimizer",
        edit("optimizer: taso", "optimizer: tasso"),
        "blocks[0].optimizer",
        "'tasso'",
        "adagrad, adam, adamw_cosine, adamw_schedulefree, amsgrad",
    ),
    (
        "unknown optimizer in a grid",
        edit("optimizer: taso", "optimizer: {grid: [taso, adm]}"),
        "blocks[0].optimizer",
        "'adm'",
        "valid choices",
    ),
    (
        "unknown model",
        edit("lenet5", "lenet6"),
        "train.model",
        "'lenet6'",
        "lenet5, resnet18, vgg19",
    ),
    ("unknown dataset", edit("digits", "digitz"), "train.dataset", "'digitz'", "cifar10"),
    ("alpha 0", GOOD + "    alpha: 0\n", "blocks[0].alpha", "0", "> 0"),
    ("beta 1.2", edit("beta: 0.7", "beta: 1.2"), "blocks[0].beta", "1.2", "(0, 1)"),
    ("lr -1 in a grid", edit("[0.05, 0.1]", "[0.05, -1]"), "blocks[0].lr", "-1", "> 0"),
    ("empty grid", edit("[0.05, 0.1]", "[]"), "blocks[0].lr.grid", "[]", "non-empty"),
    ("seeds 0", GOOD + "seeds: 0\n", "seeds", "0", ">= 1"),
    ("seeds three", GOOD + "seeds: three\n", "seeds", "'three'", "integer"),
    (
        "uniform low >= high",
        edit("scheduler:", "search: {type: random}\nscheduler:").replace(
            "{grid: [0.05, 0.1]}", "{uniform: [0.5, 0.1]}"
        ),
        "blocks[0].lr.uniform",
        "[0.5, 0.1]",
        "low < high",
    ),
    (
        "loguniform low 0",
        edit("scheduler:", "search: {type: optuna}\nscheduler:").replace(
            "{grid: [0.05, 0.1]}", "{loguniform: [0, 0.1]}"
        ),
        "blocks[0].lr.loguniform",
        "[0, 0.1]",
        "low > 0",
    ),
    (
        "distribution under search grid",
        edit("{grid: [0.05, 0.1]}", "{loguniform: [0.01, 0.1]}"),
        "blocks[0].lr",
        "{'loguniform': [0.01, 0.1]}",
        "search: random or optuna",
    ),
    (
        "choice under search grid",
        edit("beta: 0.7", "beta: {choice: [0.5, 0.7]}"),
        "blocks[0].beta",
        "{'choice': [0.5, 0.7]}",
        "random or optuna",
    ),
    (
        "grace_period >= epochs",
        edit("grace_period: 2", "grace_period: 5"),
        "scheduler.grace_period",
        "5",
        "less than the epochs (5)",
    ),
    (
        "unknown scheduler key",
        edit("grace_period: 2", "grace: 2"),
        "scheduler.grace",
        "2",
        "type, grace_period, reduction_factor",
    ),
    (
        "scheduler key of another type",
        edit("grace_period: 2", "min_epochs: 2"),
        "scheduler.min_epochs",
        "2",
        "grace_period",
    ),
    (
        "unknown scheduler",
        edit("type: asha, grace_period: 2", "type: hyperband"),
        "scheduler.type",
        "'hyperband'",
        "top-k, none, budget-sh",
    ),
    (
        "num_samples under search grid",
        GOOD + "search: {type: grid, num_samples: 4}\n",
        "search.num_samples",
        "4",
        "type",
    ),
    (
        "metric unknown",
        GOOD + "metric: val_accuracy\n",
        "metric",
        "'val_accuracy'",
        ", ".join(METRICS),
    ),
    ("mode contradicts the metric", GOOD + "metric: val_loss\nmode: max\n", "mode", "'max'", "min"),
    (
        "val metric without a validation split",
        edit("epochs: 5", "epochs: 5\n  val_fraction: 0"),
        "train.val_fraction",
        "0",
        "val_fraction > 0",
    ),
    (
        "YAML syntax error",
        edit("    beta: 0.7", "    beta: [0.7"),
        "line 10",
        "'beta: [0.7'",
        "not valid YAML",
    ),
    (
        "YAML syntax error mid-file",
        edit("  epochs: 5", "  epochs: 5\n epochs: 6"),
        "line 6",
        "'epochs: 6'",
        "not valid YAML",
    ),
    (
        "duplicate key",
        GOOD + "    lr: 0.2\n",
        "line 11",
        "'lr'",
        "duplicate key (first set on line 9)",
    ),
    (
        "top level is a list",
        "- name: t\n- blocks: []\n",
        "space",
        "[{'name': 't'}, {'blocks': []}]",
        "mapping",
    ),
    ("missing blocks", GOOD.split("blocks:")[0], "blocks", "None", "required"),
    ("empty blocks", GOOD.split("blocks:")[0] + "blocks: []\n", "blocks", "[]", "non-empty"),
    (
        "block without optimizer",
        edit("  - optimizer: taso\n    lr", "  - lr"),
        "blocks[0].optimizer",
        "None",
        "every block",
    ),
    ("seed inside a block", GOOD + "    seed: 3\n", "blocks[0].seed", "3", "seeds:"),
    ("seed in train", edit("epochs: 5", "epochs: 5\n  seed: 1"), "train.seed", "1", "seeds:"),
    (
        "optimizer field in train",
        edit("epochs: 5", "epochs: 5\n  lr: 0.1"),
        "train.lr",
        "0.1",
        "unknown training field",
    ),
    (
        "grid in train",
        edit("epochs: 5", "epochs: {grid: [5, 10]}"),
        "train.epochs",
        "{'grid': [5, 10]}",
        "fixed values",
    ),
    ("epochs 2.5", edit("epochs: 5", "epochs: 2.5"), "train.epochs", "2.5", "integer"),
    ("block epochs 2.5", GOOD + "    epochs: 2.5\n", "blocks[0].epochs", "2.5", "integer"),
    ("gpus one", GOOD + "resources: {gpus: one}\n", "resources.gpus", "'one'", "number"),
    ("negative cpus", GOOD + "resources: {cpus: -1}\n", "resources.cpus", "-1", "> 0"),
    (
        "fractional gpus above one",
        GOOD + "resources: {gpus: 1.5}\n",
        "resources.gpus",
        "1.5",
        "whole",
    ),
    ("unknown resource", GOOD + "resources: {cpu: 1}\n", "resources.cpu", "1", "cpus, gpus"),
    (
        "nesterov without momentum",
        GOOD + "    momentum: 0\n    nesterov: true\n",
        "blocks[0].nesterov",
        "True",
        "momentum > 0",
    ),
    (
        "flag not a bool",
        edit("epochs: 5", "epochs: 5\n  download: yes please"),
        "train.download",
        "'yes please'",
        "true or false",
    ),
    ("bad name", edit("name: t", "name: my sweep"), "name", "'my sweep'", "letters"),
    (
        "unknown value kind",
        edit("{grid: [0.05, 0.1]}", "{grids: [0.05, 0.1]}"),
        "blocks[0].lr",
        "{'grids': [0.05, 0.1]}",
        "grid, choice, uniform, loguniform",
    ),
    (
        "budget-sh under optuna",
        edit("{type: asha, grace_period: 2}", "budget-sh\nsearch: {type: optuna}"),
        "scheduler.type",
        "'budget-sh'",
        "search grid or random",
    ),
]


@pytest.mark.parametrize(
    "text, field, value, extra", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_files_name_file_field_and_value(tmp_path, text, field, value, extra):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_space(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: "), message
    assert f"(got {value}" in message, message
    assert extra in message, message


def test_missing_file_and_files_without_a_source(tmp_path):
    with pytest.raises(ConfigError, match=r"space: file not found \(got '.*nope.yaml'\)"):
        load_space(str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError) as info:
        load_space_dict({"name": "t", "blocks": [{"optimizer": "taso", "lr": -1}]})
    assert str(info.value).startswith("blocks[0].lr: must be > 0 (got -1")


def test_good_base_is_valid(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    assert len(load_space(str(path)).configurations()) == 2


# --- seeds ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seeds", "values"),
    [
        (3, (0, 1, 2)),
        ({"count": 3, "start": 100}, (100, 101, 102)),
        ([7, 3, 11], (7, 3, 11)),
    ],
)
def test_seeds_as_a_count_a_start_or_a_list(seeds, values) -> None:
    spec = space([{"optimizer": "taso"}], seeds=seeds, scheduler="none")
    assert spec.seed_values == values and spec.seeds == len(values)
    assert [t["seed"] for t in spec.trials()] == list(values)
    assert load_space_dict(spec.to_dict()) == spec  # every form survives the round trip


def test_seed_start_override_gives_fresh_seeds() -> None:
    spec = space([{"optimizer": "taso"}], seeds=[3, 5], scheduler="none")
    assert with_overrides(spec, seed_start=100).seed_values == (100, 101)
    assert with_overrides(spec, seeds=4).seed_values == (3, 4, 5, 6)
    with pytest.raises(ConfigError, match="--seed-start"):
        with_overrides(spec, seed_start=-1)


@pytest.mark.parametrize(
    ("seeds", "field"),
    [
        ([1, 1], "seeds"),
        ([0, -2], "seeds"),
        ({"start": 4}, "seeds.count"),
        ({"count": 2, "first": 4}, "seeds.first"),
        ({"count": 2, "start": 1.5}, "seeds.start"),
        ([], "seeds"),
    ],
)
def test_bad_seeds_name_the_field(seeds, field) -> None:
    with pytest.raises(ConfigError) as info:
        space([{"optimizer": "taso"}], seeds=seeds, scheduler="none")
    assert info.value.field == field


def test_per_seed_trials_under_asha_are_refused_unless_asked_for() -> None:
    with pytest.raises(ConfigError, match="survive") as info:
        space([{"optimizer": "taso"}], seeds=3, seeds_per_trial=1)  # scheduler asha by default
    assert info.value.field == "seeds_per_trial"
    biased = space(
        [{"optimizer": "taso"}],
        seeds=3,
        seeds_per_trial=1,
        scheduler={"type": "asha", "per_seed": True},
    )
    assert biased.scheduler.per_seed and biased.seeds_per_trial == 1
    assert load_space_dict(biased.to_dict()) == biased
    spread = space(
        [{"optimizer": "taso"}], seeds=3, seeds_per_trial=1, scheduler="none"
    )  # confirmation runs
    assert spread.seeds_per_trial == 1
    with pytest.raises(ConfigError, match="per_seed"):
        space([{"optimizer": "taso"}], seeds=3, scheduler={"type": "asha", "per_seed": True})
    with pytest.raises(ConfigError, match="seeds_per_trial"):
        space([{"optimizer": "taso"}], seeds_per_trial=2, scheduler="none")


def test_reuse_actors_is_auto_true_or_false_from_the_space_or_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sweep_helpers import write_space

    from taso_tune.cli import main

    default = load_space(str(write_space(tmp_path / "d.yaml", [{"optimizer": "taso"}])))
    assert default.reuse_actors == "auto" and default.to_dict()["reuse_actors"] == "auto"
    path = write_space(tmp_path / "s.yaml", [{"optimizer": "taso"}], reuse_actors=True)
    spec = load_space(str(path))
    assert spec.reuse_actors is True and spec.to_dict()["reuse_actors"] is True
    assert with_overrides(spec, reuse_actors=False).reuse_actors is False
    assert with_overrides(spec, reuse_actors=False).to_dict()["reuse_actors"] is False
    assert with_overrides(spec, reuse_actors="auto").reuse_actors == "auto"
    bad = write_space(tmp_path / "bad.yaml", [{"optimizer": "taso"}], reuse_actors="yes")
    assert main(["sweep", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert (
        "reuse_actors" in err and "'yes'" in err and str(bad) in err and "true or false" in err
    ), err
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(path), "--reuse-actors", "maybe", "--dry-run"])
    assert (
        exit_info.value.code == 2
        and "--reuse-actors: 'maybe' is not auto, true or false" in capsys.readouterr().err
    )


def _spaces_imports() -> dict[str, list[tuple[str, bool]]]:
    """Each module of ``taso_tune.spaces`` -> the spaces modules it imports, each with whether the
    import is a plain statement at the top of the module (not in a function, class or ``if``)."""
    package = ROOT / "taso_tune" / "spaces"
    found = {}
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text())
        top = set(map(id, tree.body))
        found[path.stem] = [
            (node.module.rsplit(".", 1)[-1], id(node) in top)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and (node.module or "").startswith("taso_tune.spaces.")
        ]
    return found


def test_spaces_modules_import_each_other_as_a_dag_from_their_tops() -> None:
    imports = _spaces_imports()
    assert [(m, i) for m, deps in imports.items() for i, at_top in deps if not at_top] == []
    graph = {m: {i for i, _ in deps} for m, deps in imports.items()}
    order: list[str] = []
    while graph:  # peel off the modules whose imports are all placed: a cycle leaves none
        ready = sorted(m for m, deps in graph.items() if deps <= set(order))
        assert ready, f"import cycle among {sorted(graph)}"
        order += ready
        graph = {m: deps for m, deps in graph.items() if m not in ready}
    assert order.index("expansion") < order.index("spec") < order.index("optuna_space")
    assert order.index("spec_checks") < order.index("spec")
