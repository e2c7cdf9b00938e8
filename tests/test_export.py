"""Exported defaults: stable and atomic files, the round trip into ``sweep --defaults`` (dry run and
one real tiny run on Ray), the paper's defaults file, and one clear error per malformed field."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import psutil
import pytest
import yaml
from test_results import damage_result, write_fixture_experiment

from taso_tune.cli import main
from taso_tune.cli.main import build_parser
from taso_tune.results.experiment import Experiment, load_experiment
from taso_tune.results.export import (
    FORMAT,
    defaults_from_experiment,
    export_defaults,
    load_defaults,
)

PAPER_DEFAULTS = Path(__file__).resolve().parents[1] / "search_spaces" / "defaults" / "paper.yaml"


@pytest.fixture
def experiment(tmp_path: Path):
    return load_experiment(str(write_fixture_experiment(tmp_path)))


def test_export_is_stable_sorted_and_atomic(experiment, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    first, second = out_dir / "a.yaml", out_dir / "b.yaml"
    export_defaults(experiment, str(first))
    time.sleep(1.1)  # a different 'exported' second
    export_defaults(experiment, str(second))
    a, b = yaml.safe_load(first.read_text()), yaml.safe_load(second.read_text())
    assert a["provenance"].pop("exported") != b["provenance"].pop("exported")
    assert a == b
    differing = [
        pair
        for pair in zip(
            first.read_text().splitlines(), second.read_text().splitlines(), strict=True
        )
        if pair[0] != pair[1]
    ]
    assert len(differing) == 1 and "exported" in differing[0][0]
    assert list(a["optimizers"]) == sorted(a["optimizers"])
    assert all(list(e["hparams"]) == sorted(e["hparams"]) for e in a["optimizers"].values())
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.yaml", "b.yaml"]  # no temp file left


def test_export_content_follows_the_selection(experiment) -> None:
    on_val = defaults_from_experiment(experiment, "val")
    assert on_val["format"] == FORMAT
    assert on_val["provenance"]["selected_on"] == "val_acc" and on_val["provenance"]["epochs"] == 3
    taso = on_val["optimizers"]["taso"]
    assert taso["config_id"] == "taso_alpha=10_beta=0.5"
    assert taso["hparams"] == {
        "alpha": 10.0,
        "beta": 0.5,
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.0001,
    }
    assert taso["val_acc"] == {
        "mean": pytest.approx(0.91),
        "std": pytest.approx(0.01414213562373095),
        "ci95": [pytest.approx(0.782938), 1.0],  # the t interval's 1.037062 cut at 1
        "n": 2,
        "planned": 2,
        "complete": 2,
        "diverged": 0,
        "no_value": 0,
        "at_chance": 0,
    }
    # the one rule's verdicts: adagrad ran seeds 0-3, the reference 0-1, so it is not compared
    assert taso["verdict"] == "reference"
    assert on_val["optimizers"]["adagrad"]["verdict"] == "not compared"
    assert on_val["optimizers"]["adagrad"]["versus_best"]["reason"] == (
        "not run over the reference's seeds"
    )
    assert on_val["optimizers"]["adagrad"]["val_acc"]["diverged"] == 1
    assert on_val["optimizers"]["adagrad"]["val_acc"]["at_chance"] == 1
    assert on_val["optimizers"]["adagrad"]["val_acc"]["complete"] == 3
    provenance = on_val["provenance"]
    assert (
        provenance["scheduler"] == "asha (per seed: biased baseline)"
        and provenance["planned_seeds"] == 2
    )
    assert provenance["seeds"] == [0, 1, 2, 3] and provenance["seeds_diverged"] == 1
    assert provenance["configurations"] == {"total": 4, "compared": 2, "not_compared": 2}
    assert provenance["seeds_stopped_early"] == 1
    assert provenance["split_sizes"] == {"train": 1293, "val": 144, "test": 360}
    on_test = defaults_from_experiment(experiment, "test")
    assert on_test["provenance"]["selected_on"] == "test_acc"
    # taso alpha 25 has the better test mean but is missing a seed: never exported
    assert on_test["optimizers"]["taso"]["hparams"]["alpha"] == 10.0


def test_one_seed_exports_a_null_std_not_zero(experiment, tmp_path: Path) -> None:
    trials = experiment.trials
    one = trials[(trials["seed"] == 0) & (trials["config_id"] != "taso_alpha=25_beta=0.7")]
    single = Experiment(experiment.path, {**experiment.space, "seeds": 1}, one, experiment.epochs)
    out = tmp_path / "one.yaml"
    export_defaults(single, str(out))
    stat = yaml.safe_load(out.read_text())["optimizers"]["taso"]["val_acc"]
    assert stat["n"] == 1 and stat["std"] is None and stat["ci95"] is None


def test_cli_export_writes_and_prints_a_table(
    experiment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", experiment.path]) == 0
    out = capsys.readouterr().out
    path = Path(experiment.path) / "defaults.yaml"
    assert str(path) in out and "91.00 ± 1.41 (n=2) [78.29, 100.00]" in out and "adagrad" in out
    assert "reference (best on val_acc)" in out and "at chance 1/4" in out
    assert "Holm-adjusted interval (excludes 0 exactly when the verdict says better/worse" in out
    assert load_defaults(str(path))["optimizers"]["adagrad"]["hparams"]["lr"] == 0.05


def _dry_run(defaults: Path, capsys: pytest.CaptureFixture[str], epochs: int = 2) -> str:
    code = main(
        [
            "sweep",
            "--defaults",
            str(defaults),
            "--model",
            "lenet5",
            "--dataset",
            "digits",
            "--epochs",
            str(epochs),
            "--seeds",
            "2",
            "--dry-run",
        ]
    )
    assert code == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_round_trip_dry_run_one_configuration_per_optimizer(
    experiment, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "exported.yaml"
    export_defaults(experiment, str(out))
    text = _dry_run(out, capsys)
    # fresh seeds: the fixture's selection used seeds 0-3
    assert "2 configurations; seeds [4, 5], 2 per trial = 2 trials" in text
    lines = [line.strip() for line in text.splitlines()[1:]]
    assert [line.split(":")[0] for line in lines] == ["adagrad", "taso"]
    assert "'alpha': 10.0" in lines[1] and "'epochs': 2" in lines[1]


def test_paper_defaults_file(capsys: pytest.CaptureFixture[str]) -> None:
    document = load_defaults(str(PAPER_DEFAULTS))
    assert document["provenance"]["selected_on"] == "test_acc"
    assert document["optimizers"]["taso"]["hparams"] == {
        "alpha": 25,
        "beta": 0.7,
        "lr": 0.05,
        "momentum": 0.9,
        "nesterov": False,
        "weight_decay": 0.0001,
    }
    assert document["optimizers"]["taso"]["test_acc"] == {"mean": 0.9198, "std": 0.0019, "n": 5}
    text = _dry_run(PAPER_DEFAULTS, capsys, epochs=3)
    assert "4 configurations; seeds [0, 1], 2 per trial = 4 trials, up to 24 seed-epochs" in text


MALFORMED = {
    "bad-yaml": ("format: taso-tune-defaults/1\noptimizers: [unclosed\n", "not valid YAML"),
    "format": (
        "format: taso-tune-defaults/0\noptimizers: {taso: {hparams: {lr: 0.05}}}\n",
        "format:",
    ),
    "optimizer": (
        f"format: {FORMAT}\noptimizers: {{tasso: {{hparams: {{lr: 0.05}}}}}}\n",
        "optimizers.tasso:",
    ),
    "hparam": (
        f"format: {FORMAT}\noptimizers: {{taso: {{hparams: {{lr: -1}}}}}}\n",
        "optimizers.taso.hparams.lr:",
    ),
}


# --- `taso-tune apply`: the defaults applied to a new pair (`sweep --defaults`, deprecated) -----------


def _apply_argv(defaults: Path, *flags: str) -> list[str]:
    return ["apply", str(defaults), "--model", "lenet5", "--dataset", "digits", *flags]


def test_apply_dry_run_is_what_sweep_defaults_printed(experiment, tmp_path: Path, capsys) -> None:
    out = tmp_path / "exported.yaml"
    export_defaults(experiment, str(out))
    flags = ["--epochs", "2", "--seeds", "2", "--dry-run"]
    assert main(_apply_argv(out, *flags)) == 0
    applied = capsys.readouterr()
    assert applied.err == ""
    assert "2 configurations; seeds [4, 5], 2 per trial = 2 trials" in applied.out
    assert _dry_run(out, capsys) == applied.out


def test_sweep_defaults_warns_once_naming_apply(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--defaults", str(PAPER_DEFAULTS), "--model", "lenet5", "--dataset", "digits"]
    assert main(["sweep", *argv, "--epochs", "3", "--dry-run"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: "), err
    assert "deprecated" in err[0] and "taso-tune apply" in err[0], err


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_apply_malformed_defaults_exit_2_naming_file_and_field(
    case: str, tmp_path: Path, capsys
) -> None:
    text, field = MALFORMED[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    assert main(_apply_argv(path, "--dry-run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("taso-tune apply: error: "), err
    assert str(path) in err[0] and field in err[0], err


def test_apply_without_model_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", str(PAPER_DEFAULTS), "--dataset", "digits", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert str(PAPER_DEFAULTS) in err and "--model" in err, err


@pytest.mark.parametrize("command", ["apply", "sweep --defaults"])
def test_a_bad_data_root_names_the_flag_not_the_defaults_file(
    command: str, tmp_path: Path, capsys
) -> None:
    missing = tmp_path / "no-such-folder"
    storage = tmp_path / "runs"
    argv = _apply_argv(PAPER_DEFAULTS, "--storage", str(storage), "--epochs", "1")
    argv[argv.index("digits")] = "mnist"
    argv += ["--data-root", str(missing)]
    if command != "apply":
        argv = ["sweep", "--defaults", *argv[1:]]
    assert main(argv) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"taso-tune {command.split()[0]}: error: --data-root: "), line
    assert str(missing) in line and "train.data_root" not in line, line
    assert str(PAPER_DEFAULTS) not in line and not storage.exists()
    # every flag the line suggests is one the command has (--download fetches the files)
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line))
    assert "--download" in named and named <= _flags(command.split()[0]), line


def _flags(command: str) -> set[str]:
    """The option strings of ``taso-tune COMMAND``."""
    (sub,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {flag for action in sub.choices[command]._actions for flag in action.option_strings}


@pytest.mark.parametrize("command", ["apply", "sweep --defaults"])
def test_download_goes_to_the_applied_space(command: str, capsys) -> None:
    argv = _apply_argv(PAPER_DEFAULTS, "--data-root", "data", "--download", "--dry-run")
    if command != "apply":
        argv = ["sweep", "--defaults", *argv[1:]]
    assert main(argv) == 0, capsys.readouterr().err
    trials = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert trials and all("'download': True" in line for line in trials), trials


def test_download_without_defaults_is_refused(tmp_path: Path, capsys) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(
        "name: s\ntrain: {model: lenet5, dataset: digits}\nblocks: [{optimizer: taso}]\n"
    )
    assert main(["sweep", str(space), "--download", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--download" in err and "only goes with --defaults" in err, err


@pytest.mark.parametrize(("flag", "value"), [("--model", "lenet"), ("--dataset", "mnits")])
def test_an_unknown_model_or_dataset_names_the_flag(flag: str, value: str, capsys) -> None:
    argv = _apply_argv(PAPER_DEFAULTS, "--dry-run")
    argv[argv.index(flag) + 1] = value
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"taso-tune apply: error: {flag}: "), err
    assert str(PAPER_DEFAULTS) not in err[0], err


def test_applying_again_is_refused_with_a_hint_the_user_can_follow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = tmp_path / "runs"
    (storage / "defaults-lenet5-digits").mkdir(parents=True)
    assert main(_apply_argv(PAPER_DEFAULTS, "--storage", str(storage))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("taso-tune apply: error: experiment: "), err
    experiment = storage / "defaults-lenet5-digits"
    assert f"`taso-tune resume {experiment}`" in err[0] and "another --name" not in err[0], err
    assert "pass --name NAME" in err[0], err
    named = ["--storage", str(storage), "--name", "defaults-lenet5-digits"]
    assert main(_apply_argv(PAPER_DEFAULTS, *named)) == 2
    err = capsys.readouterr().err
    assert "error: --name: " in err and "choose another --name" in err, err
    assert sorted(p.name for p in storage.iterdir()) == ["defaults-lenet5-digits"]


@pytest.mark.ray
@pytest.mark.slow
def test_apply_runs_end_to_end(experiment, tmp_path: Path, capsys, monkeypatch) -> None:
    import ray

    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # a local Ray of its own
    out = tmp_path / "exported.yaml"
    export_defaults(experiment, str(out))
    storage = tmp_path / "runs"
    flags = ["--epochs", "2", "--seeds", "1", "--max-concurrent", "2", "--storage", str(storage)]
    try:
        code = main(_apply_argv(out, *flags, "--name", "applied"))
    finally:
        ray.shutdown()
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    result = load_experiment(str(storage / "applied"))
    assert sorted(result.trials["optimizer"]) == ["adagrad", "taso"]
    assert set(result.trials["status"]) == {"complete"} and set(result.trials["epochs_run"]) == {2}
    assert list(result.trials["seed"]) == [4, 4]  # fresh seeds above the selection's 0-3
    assert "best configuration per optimizer" in captured.out
    assert "deprecated" not in captured.err
    deadline = time.monotonic() + 20
    while psutil.Process().children(recursive=True) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not psutil.Process().children(recursive=True), "Ray left processes behind"


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_defaults_exit_2_naming_file_and_field(case: str, tmp_path: Path, capsys) -> None:
    text, field = MALFORMED[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    code = main(
        ["sweep", "--defaults", str(path), "--model", "lenet5", "--dataset", "digits", "--dry-run"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert str(path) in err and field in err, err


def test_defaults_without_model_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sweep", "--defaults", str(PAPER_DEFAULTS), "--dataset", "digits", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and str(PAPER_DEFAULTS) in err and "--model" in err, err


@pytest.mark.ray
@pytest.mark.slow
def test_defaults_sweep_runs_end_to_end(experiment, tmp_path: Path, capsys, monkeypatch) -> None:
    import ray

    monkeypatch.delenv(
        "RAY_ADDRESS", raising=False
    )  # a local Ray of its own, never a shared cluster

    out = tmp_path / "exported.yaml"
    export_defaults(experiment, str(out))
    storage = tmp_path / "runs"
    try:
        code = main(
            [
                "sweep",
                "--defaults",
                str(out),
                "--model",
                "lenet5",
                "--dataset",
                "digits",
                "--epochs",
                "2",
                "--seeds",
                "1",
                "--max-concurrent",
                "2",
                "--storage",
                str(storage),
            ]
        )
    finally:
        ray.shutdown()
    assert code == 0, capsys.readouterr().err[-2000:]
    result = load_experiment(str(storage / "defaults-lenet5-digits"))
    assert sorted(result.trials["optimizer"]) == ["adagrad", "taso"]
    assert set(result.trials["status"]) == {"complete"} and set(result.trials["epochs_run"]) == {2}
    assert "best configuration per optimizer" in capsys.readouterr().out
    deadline = time.monotonic() + 20
    while psutil.Process().children(recursive=True) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not psutil.Process().children(recursive=True), "Ray left processes behind"


def test_export_refuses_damaged_results_and_writes_nothing(tmp_path: Path, capsys) -> None:
    experiment = write_fixture_experiment(tmp_path)
    result = damage_result(experiment, 2, "val_acc", "0.9x")
    out = tmp_path / "out" / "defaults.yaml"
    out.parent.mkdir()
    for args in (["-o", str(out)], []):  # a named output, and the default one in the experiment
        assert main(["export", str(experiment), *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{result}: line 2: val_acc: must be a number" in err[0], err
    assert list(out.parent.iterdir()) == [] and not (experiment / "defaults.yaml").exists()
