"""Bad values and bad places stopped before anything starts, without Ray: each case exits 2 with one
line naming what is wrong, and leaves no file or folder behind (docs/reliability.md lists them).

Non-finite numbers in every way they enter (space grids and distribution bounds, defaults files,
``train`` and ``schedule`` flags); a batch larger than the training set; storage that is a file, under
a file, unwritable or unreachable; outputs under a file; experiment names that leave the storage; a
space too large to check; and the noise around real errors (warnings, broken pipes).
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sweep_helpers import write_space

from taso_tune.cli import format_warning, main
from taso_tune.core.errors import ConfigError
from taso_tune.core.storage import STORAGE_TIMEOUT_ENV, check_writable
from taso_tune.experiment.state import planned_trials
from taso_tune.spaces import counting as progress
from taso_tune.spaces import load_space, load_space_dict
from taso_tune.spaces.counting import counted
from taso_tune.spaces.expansion import count_configurations, count_trials
from taso_tune.tuning.paths import experiment_path

REPO = Path(__file__).resolve().parents[1]


def _one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"taso-tune {command}: error: "), err
    return lines[0]


def test_config_error_survives_pickling() -> None:
    import ray.cloudpickle

    err = ConfigError(
        "blocks[0].gamma", 2.0, "must be in (0, 1]", file="space.yaml", choices=[0.1, 0.5]
    )
    for dumps, loads in (
        (pickle.dumps, pickle.loads),
        (ray.cloudpickle.dumps, ray.cloudpickle.loads),
    ):
        back = loads(dumps(err))
        assert type(back) is ConfigError
        assert (back.field, back.value, back.problem, back.file, back.choices) == (
            "blocks[0].gamma",
            2.0,
            "must be in (0, 1]",
            "space.yaml",
            [0.1, 0.5],
        )
        assert (
            str(back)
            == "space.yaml: blocks[0].gamma: must be in (0, 1] (got 2.0); valid choices: 0.1, 0.5"
        )


# --- class 1: values that pass a comparison but are meaningless --------------------------------------

#: A block (YAML text) and the field its error names; every one of these once reached Ray.
BAD_BLOCKS = {
    "lr .inf": ("{optimizer: taso, lr: .inf}", "blocks[0].lr"),
    "lr 1e400": ("{optimizer: taso, lr: 1e400}", "blocks[0].lr"),
    "alpha .inf": ("{optimizer: taso, alpha: .inf}", "blocks[0].alpha"),
    "alpha nan in a grid": ("{optimizer: taso, alpha: {grid: [10, .nan]}}", "blocks[0].alpha"),
    "weight_decay 1e400": ("{optimizer: adam, weight_decay: 1e400}", "blocks[0].weight_decay"),
    "lr_final .inf": ("{optimizer: sgd_cosine, lr_final: .inf}", "blocks[0].lr_final"),
    "lr_final above lr": ("{optimizer: taso, lr: 0.05, lr_final: 0.1}", "blocks[0].lr_final"),
    "momentum 5": ("{optimizer: sgd, momentum: 5}", "blocks[0].momentum"),
    "momentum 1": ("{optimizer: taso, momentum: 1}", "blocks[0].momentum"),
    "milestone past the end": (
        "{optimizer: sgd_step, milestones: [0.5, 2]}",
        "blocks[0].milestones",
    ),
    "gamma .inf": ("{optimizer: sgd_step, gamma: .inf}", "blocks[0].gamma"),
    "warmup + decay > 1": ("{optimizer: sgd_wsd, warmup: 0.6, decay: 0.6}", "blocks[0].decay"),
}
#: Distributions of random search: their bounds are numbers of the same fields.
BAD_DISTRIBUTIONS = {
    "loguniform up to 1e400": (
        "{optimizer: taso, lr: {loguniform: [0.001, 1e400]}}",
        "blocks[0].lr",
    ),
    "uniform from .nan": ("{optimizer: taso, beta: {uniform: [.nan, 0.9]}}", "blocks[0].beta"),
    "uniform below 0": ("{optimizer: taso, lr: {uniform: [-1, 1]}}", "blocks[0].lr"),
    "uniform momentum to 5": (
        "{optimizer: sgd, momentum: {uniform: [0.5, 5]}}",
        "blocks[0].momentum",
    ),
    "uniform beta to 1": ("{optimizer: taso, beta: {uniform: [0.5, 1.0]}}", "blocks[0].beta"),
}


def _space_text(block: str, search: str = "grid") -> str:
    search = "{type: random, num_samples: 2}" if search == "random" else "grid"
    return (
        f"name: bad\ntrain: {{model: lenet5, dataset: digits, epochs: 2}}\nscheduler: none\n"
        f"search: {search}\nblocks:\n  - {block}\n"
    )


@pytest.mark.parametrize("case", sorted(BAD_BLOCKS) + sorted(BAD_DISTRIBUTIONS))
def test_meaningless_numbers_in_a_space_are_refused_before_ray(
    tmp_path: Path, capsys, case: str
) -> None:
    block, field = BAD_BLOCKS.get(case) or BAD_DISTRIBUTIONS[case]
    space = tmp_path / "bad.yaml"
    space.write_text(_space_text(block, "grid" if case in BAD_BLOCKS else "random"))
    storage = tmp_path / "runs"
    assert main(["sweep", str(space), "--storage", str(storage)]) == 2
    line = _one_error_line(capsys, "sweep")
    assert f"bad.yaml: {field}" in line, (
        line
    )  # a bound's error names the distribution: blocks[0].lr.loguniform
    assert not storage.exists()


BAD_DEFAULTS = {
    "lr .inf": ("{lr: .inf}", "optimizers.taso.hparams.lr"),
    "lr 1e400": ("{lr: 1e400}", "optimizers.taso.hparams.lr"),
    "lr 1.0e+400": ("{lr: 1.0e+400}", "optimizers.taso.hparams.lr"),
    "alpha .nan": ("{alpha: .nan}", "optimizers.taso.hparams.alpha"),
    "momentum 5": ("{momentum: 5}", "optimizers.taso.hparams.momentum"),
    "lr_final above lr": ("{lr: 0.05, lr_final: 0.1}", "optimizers.taso.hparams.lr_final"),
}


@pytest.mark.parametrize("case", sorted(BAD_DEFAULTS) + ["epochs .inf", "binary file"])
def test_meaningless_defaults_files_are_refused(tmp_path: Path, capsys, case: str) -> None:
    path = tmp_path / "defaults.yaml"
    if case == "binary file":
        path.write_bytes(bytes(range(256)) * 4)
        field = "--defaults"
    else:
        hparams, field = BAD_DEFAULTS.get(case, ("{lr: 0.05}", "provenance.epochs"))
        epochs = ".inf" if case == "epochs .inf" else "3"
        path.write_text(
            f"format: taso-tune-defaults/1\nprovenance: {{epochs: {epochs}}}\n"
            f"optimizers:\n  taso:\n    hparams: {hparams}\n"
        )
    storage = tmp_path / "runs"
    argv = [
        "sweep",
        "--defaults",
        str(path),
        "--model",
        "lenet5",
        "--dataset",
        "digits",
        "--storage",
        str(storage),
    ]
    assert main(argv) == 2
    line = _one_error_line(capsys, "sweep")
    assert field in line and "defaults.yaml" in line, line
    assert not storage.exists()


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--lr", "inf"], "lr"),
        (["--lr", "1e400"], "lr"),
        (["--alpha", "nan"], "alpha"),
        (["--beta", "inf"], "beta"),
        (["--set", "weight_decay=1e400"], "weight_decay"),
        (["--set", "weight_decay=.inf"], "weight_decay"),
        (["--set", "momentum=5"], "momentum"),
        (["--val-fraction", "nan"], "val_fraction"),
        (["--optimizer", "sgd_step", "--set", "gamma=.inf"], "gamma"),
        (["--batch-size", "5000"], "batch_size"),
    ],
)
def test_meaningless_train_flags_are_refused(
    tmp_path: Path, capsys, flags: list[str], field: str
) -> None:
    out = tmp_path / "out"
    assert main(["train", "--epochs", "1", "--device", "cpu", "--out", str(out), *flags]) == 2
    line = _one_error_line(capsys, "train")
    assert f"error: {field}:" in line, line
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--lr-initial", "inf"], "lr_initial"),
        (["--lr-initial", "1e400"], "lr_initial"),
        (["--alpha", "nan"], "alpha"),
        (["--beta", "inf"], "beta"),
        (["--lr-final", "inf"], "lr_final"),
        (["--set", "lr_final=1e400"], "lr_final"),
        (["step", "--set", "gamma=.inf"], "gamma"),
        (["step", "--set", "milestones=[0.5, .inf]"], "milestones"),
        (["wsd", "--set", "decay=.nan"], "decay"),
    ],
)
def test_meaningless_schedule_flags_are_refused(capsys, flags: list[str], field: str) -> None:
    assert main(["schedule", *flags]) == 2
    line = _one_error_line(capsys, "schedule")
    assert f"error: {field}:" in line, line


def test_a_batch_larger_than_the_training_set_stops_the_sweep_before_ray(
    tmp_path: Path, capsys
) -> None:
    # digits: 1797 images, 20% test, 10% of the rest for validation -> 1294 training images
    space = write_space(
        tmp_path / "space.yaml", [{"optimizer": "taso", "batch_size": {"grid": [64, 2000]}}]
    )
    storage = tmp_path / "runs"
    assert main(["sweep", str(space), "--storage", str(storage)]) == 2
    line = _one_error_line(capsys, "sweep")
    assert (
        "blocks[0].batch_size: larger than the training part of dataset 'digits' (train 1294"
        in line
    )
    assert "configuration taso_batch_size=2000" in line and "(got 2000)" in line
    assert not storage.exists()
    import ray

    assert not ray.is_initialized()


# --- class 3: where taso-tune writes ----------------------------------------------------------------


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder\n")
    return path


@pytest.fixture
def unwritable(tmp_path: Path):
    """A folder this process cannot write: mode 0500, or for root (who ignores modes) sysfs."""
    if os.geteuid() == 0:
        yield Path("/sys")
        return
    folder = tmp_path / "read-only"
    folder.mkdir(mode=0o500)
    yield folder
    folder.chmod(0o700)


@pytest.fixture
def silent_endpoint():
    """A TCP port that accepts connections and never answers: a bucket endpoint that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


def _storage_cases(a_file: Path, unwritable: Path, silent: str) -> dict[str, tuple[str, str]]:
    return {
        "a file": (str(a_file), "is a file, not a folder"),
        "under a file": (str(a_file / "runs"), f"is under {a_file}, which is a file"),
        "unwritable": (str(unwritable / "runs"), f"cannot write in {unwritable}"),
        "unknown scheme": (
            "nosuch://bucket/runs",
            "cannot reach this storage: Unrecognized filesystem",
        ),
        "refused endpoint": (
            "s3://bucket/runs?endpoint_override=127.0.0.1:1&scheme=http",
            "cannot reach this storage",
        ),
        "silent endpoint": (
            f"s3://bucket/runs?endpoint_override={silent}&scheme=http",
            "storage did not answer within 1 s",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "a file",
        "under a file",
        "unwritable",
        "unknown scheme",
        "refused endpoint",
        "silent endpoint",
    ],
)
def test_storage_that_cannot_be_written_is_refused_before_ray(
    tmp_path: Path, capsys, monkeypatch, a_file, unwritable, silent_endpoint, case: str
) -> None:
    if case == "silent endpoint":  # the refused one takes the S3 client's few retries to fail
        monkeypatch.setenv(STORAGE_TIMEOUT_ENV, "1")
    storage, problem = _storage_cases(a_file, unwritable, silent_endpoint)[case]
    space = write_space(tmp_path / "space.yaml", [{"optimizer": "taso"}])
    before = sorted(tmp_path.rglob("*"))
    start = time.monotonic()
    assert main(["sweep", str(space), "--storage", storage]) == 2
    line = _one_error_line(capsys, "sweep")
    assert f"--storage: {problem}" in line and storage in line, line
    assert time.monotonic() - start < 30
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("command", ["report", "export", "train"])
def test_outputs_under_a_file_are_refused_before_any_work(
    tmp_path: Path, capsys, a_file, command: str
) -> None:
    out = a_file / (
        "out.html" if command == "report" else "out.yaml" if command == "export" else "run"
    )
    argv = (
        ["train", "--epochs", "1", "--out", str(out)]
        if command == "train"
        else [command, str(tmp_path), "-o", str(out)]
    )
    assert main(argv) == 2
    line = _one_error_line(capsys, command)
    assert f"is under {a_file}, which is a file, not a folder" in line, line
    assert a_file.read_text() == "not a folder\n"


def test_report_to_a_uri_or_a_folder_is_refused(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path), "-o", "s3://bucket/report.html"]) == 2
    assert "must be a local file path" in _one_error_line(capsys, "report")
    assert main(["export", str(tmp_path), "-o", str(tmp_path)]) == 2
    assert "is a folder, not a file" in _one_error_line(capsys, "export")


def test_check_writable_leaves_nothing_behind(tmp_path: Path) -> None:
    check_writable(str(tmp_path / "new" / "deeper"), "--storage", "folder")
    check_writable(str(tmp_path / "report.html"), "-o", "file")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../outside"])
def test_names_that_leave_the_storage_are_refused(tmp_path: Path, capsys, name: str) -> None:
    space = write_space(tmp_path / "space.yaml", [{"optimizer": "taso"}])
    storage = tmp_path / "runs"
    assert main(["sweep", str(space), "--storage", str(storage), "--name", name]) == 2
    line = _one_error_line(capsys, "sweep")
    assert "--name" in line and repr(name) in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]
    with pytest.raises(ConfigError, match="one folder name inside the storage"):
        experiment_path(str(storage), name)


def test_a_space_named_dot_dot_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"space.yaml: name: .*not \. or \.\."):
        load_space(str(write_space(tmp_path / "space.yaml", [{"optimizer": "taso"}], name="..")))


# --- class 5: a space too large to run --------------------------------------------------------------


def _grid(n: int) -> dict:
    return {"grid": [round(0.001 * (i + 1), 6) for i in range(n)]}


def test_trials_are_counted_without_expanding_the_space() -> None:
    quickstart = load_space(str(REPO / "search_spaces/quickstart.yaml"))
    # taso 3 lr x 2 beta + amsgrad 3 + rmsprop 2 + adagrad 2 = 13 configurations, 3 seeds
    assert count_configurations(quickstart.blocks) == 13
    assert count_trials(quickstart) == 39 == len(quickstart.trials())
    random = load_space_dict(
        {
            "name": "r",
            "search": {"type": "random", "num_samples": 4},
            "seeds": 2,
            "blocks": [
                {
                    "optimizer": "taso",
                    "lr": {"loguniform": [0.01, 0.1]},
                    "beta": {"grid": [0.5, 0.7, 0.9]},
                },
                {"optimizer": "adam", "lr": {"grid": [0.001, 0.002]}},
            ],
        }
    )
    # 3 grid points x 4 draws + 2 grid points (nothing drawn) = 14 configurations, x 2 seeds
    assert count_configurations(random.blocks, 4) == 14 == len(random.configurations())
    assert count_trials(random) == 28
    budget_space = {
        "name": "b",
        "seeds": 2,
        "train": {"epochs": 27},
        "scheduler": {"type": "budget-sh", "reduction_factor": 3, "min_epochs": 3},
        "blocks": [{"optimizer": "taso", "lr": _grid(10)}],
    }
    budget = load_space_dict(budget_space)
    # rungs of 3, 9 and 27 epochs: 10, then ceil(10/3) = 4, then ceil(4/3) = 2 configurations, one
    # trial each training its 2 seeds (one trial per seed with seeds_per_trial: 1)
    assert budget.scheduler.rung_epochs(27) == [3, 9, 27]
    assert planned_trials(budget) == 10 + 4 + 2
    per_seed = load_space_dict({**budget_space, "seeds_per_trial": 1})
    assert planned_trials(per_seed) == (10 + 4 + 2) * 2


def test_a_huge_grid_is_refused_at_once_naming_the_count(tmp_path: Path, capsys) -> None:
    block = {
        "optimizer": "taso",
        "lr": _grid(100),
        "alpha": {"grid": list(range(1, 101))},
        "beta": {"grid": [round(0.01 * i, 2) for i in range(1, 100)]},
        "momentum": _grid(10),
    }
    space = write_space(tmp_path / "huge.yaml", [block], seeds=3)
    start = time.monotonic()
    assert main(["sweep", str(space), "--dry-run"]) == 2
    assert time.monotonic() - start < 5  # 9.9 million configurations, none of them made
    line = _one_error_line(capsys, "sweep")
    assert (
        "blocks: the space makes 9900000 configurations x 3 seeds = 29700000 training runs, more than the cap of 10000"
        in line
    )
    assert "--max-trials 29700000" in line


def test_max_trials_moves_the_cap(tmp_path: Path, capsys) -> None:
    space = write_space(tmp_path / "space.yaml", [{"optimizer": "taso", "lr": _grid(30)}], seeds=2)
    assert main(["sweep", str(space), "--dry-run", "--max-trials", "50"]) == 2
    assert (
        "30 configurations x 2 seeds = 60 training runs, more than the cap of 50"
        in _one_error_line(capsys, "sweep")
    )
    assert main(["sweep", str(space), "--dry-run", "--max-trials", "60"]) == 0
    assert "30 configurations; seeds [0, 1], 2 per trial = 30 trials" in capsys.readouterr().out
    assert main(["sweep", str(space), "--dry-run", "--max-trials", "0"]) == 2
    assert "--max-trials: must be an integer >= 1" in _one_error_line(capsys, "sweep")
    # a raised cap travels with the resolved space (what resume reads back)
    spec = load_space(str(space), max_trials=60)
    assert spec.to_dict()["max_trials"] == 60 and load_space_dict(spec.to_dict()) == spec
    assert "max_trials" not in load_space(str(REPO / "search_spaces/quickstart.yaml")).to_dict()


def test_long_loops_print_progress(monkeypatch, capsys) -> None:
    monkeypatch.setattr(progress, "FIRST_AFTER_S", 0.0)
    monkeypatch.setattr(progress, "EVERY_S", 0.05)

    def slow():
        for i in range(5):
            time.sleep(0.03)
            yield i

    assert list(counted(slow(), 5, "checking")) == [0, 1, 2, 3, 4]
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "checking: 0 of 5 (0%)"
    assert 2 <= len(lines) <= 4 and all(line.startswith("checking: ") for line in lines)


def _sigint_default_but_blocked() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def test_a_large_space_shows_progress_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    block = {
        "optimizer": "taso",
        "lr": _grid(100),
        "alpha": {"grid": list(range(1, 101))},
        "momentum": _grid(100),
    }
    space = write_space(tmp_path / "big.yaml", [block])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # SIGINT handled by default (a suite started in the background of a script ignores it, and a
    # child would inherit that) but blocked, as a parent can leave it: the CLI must unblock it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taso_tune.cli",
            "sweep",
            str(space),
            "--dry-run",
            "--max-trials",
            "1000000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_sigint_default_but_blocked,
    )
    line = proc.stderr.readline()  # the first progress line, a few seconds in
    assert line.startswith("checking the space's configurations: ") and "of 1000000" in line, line
    proc.send_signal(2)
    try:
        rest = proc.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired:  # say where it hangs
        spy = Path(sys.executable).with_name("py-spy")
        dump = subprocess.run(
            [str(spy), "dump", "--pid", str(proc.pid)], capture_output=True, text=True
        ).stdout
        proc.kill()
        pytest.fail(f"no exit 30 s after SIGINT; its stack:\n{dump}")
    assert proc.returncode == 130
    assert "Traceback" not in rest and rest.strip().endswith(
        "taso-tune sweep: interrupted (SIGINT)"
    )


def test_ctrl_c_in_a_counted_loop_stops_it_at_the_next_item(monkeypatch) -> None:
    """The loop's SIGINT handler only notes the signal; the loop raises at its next item, so no
    interrupt is lost in a finalizer. Python's handler is back afterwards."""
    monkeypatch.setattr(progress, "FIRST_AFTER_S", 1e9)
    # Python's handler, unblocked, whatever this process started with (in the background of a
    # script SIGINT is ignored)
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    seen = []
    with pytest.raises(KeyboardInterrupt):
        for i in progress.counted(range(100), 100, "checking"):
            seen.append(i)
            if i == 3:
                os.kill(os.getpid(), signal.SIGINT)
    assert seen == [0, 1, 2, 3]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    signal.signal(signal.SIGINT, handler)


# --- class 6: noise ---------------------------------------------------------------------------------


def test_warnings_print_without_a_source_path() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "taso_tune.cli", "schedule", "--alpha", "5", "--epochs", "3"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0
    err = proc.stderr
    assert err.startswith("warning: TASO alpha=5.0, beta=0.7: the paper's heuristic"), err
    assert ".py:" not in err and "UserWarning" not in err
    assert format_warning(UserWarning("x"), UserWarning, "/some/file.py", 3) == "warning: x\n"


def test_any_command_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    space = write_space(tmp_path / "space.yaml", [{"optimizer": "taso", "lr": _grid(2000)}])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        f"{sys.executable} -m taso_tune.cli sweep {space} --dry-run | head -1",
        shell=True,
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.stdout.startswith("tiny: 2000 configurations; seeds [0]")
    assert proc.stderr == ""


def test_the_defaults_file_writes_yaml_that_loads_back(tmp_path: Path) -> None:
    # the loader that reads defaults files (the space files' own) still reads what export writes
    document = {
        "format": "taso-tune-defaults/1",
        "provenance": {"epochs": 2},
        "optimizers": {"taso": {"hparams": {"lr": 5.0e-05, "alpha": 25.0}}},
    }
    path = tmp_path / "defaults.yaml"
    path.write_text(yaml.safe_dump(document))
    from taso_tune.results.export import load_defaults

    assert load_defaults(str(path))["optimizers"]["taso"]["hparams"]["lr"] == 5.0e-05


# --- class 4 and 5: YAML that would run code, a cluster that is not there -----------------------------


def test_python_tags_in_yaml_never_run(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "marker"
    tag = f"!!python/object/apply:os.system ['touch {marker}']"
    space = tmp_path / "space.yaml"
    space.write_text(f"name: x\nblocks:\n  - optimizer: taso\n    lr: {tag}\n")
    assert main(["sweep", str(space), "--dry-run"]) == 2
    assert "space.yaml" in _one_error_line(capsys, "sweep")
    defaults = tmp_path / "defaults.yaml"
    defaults.write_text(
        f"format: taso-tune-defaults/1\noptimizers:\n  taso:\n    hparams: {{lr: {tag}}}\n"
    )
    assert (
        main(
            [
                "sweep",
                "--defaults",
                str(defaults),
                "--model",
                "lenet5",
                "--dataset",
                "digits",
                "--dry-run",
            ]
        )
        == 2
    )
    assert "defaults.yaml" in _one_error_line(capsys, "sweep")
    assert main(["schedule", "--set", f"lr_final={tag}"]) == 2
    assert "--set" in _one_error_line(capsys, "schedule")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1:1", "no Ray cluster at 127.0.0.1:1 ("),
        ("ray://127.0.0.1:1", "no Ray cluster at 127.0.0.1:1 ("),
        ("127.0.0.1:notaport", "must be HOST:PORT or ray://HOST:PORT"),
    ],
)
def test_an_address_where_no_cluster_listens_is_one_line(
    tmp_path: Path, capsys, address: str, problem: str
) -> None:
    space = write_space(tmp_path / "space.yaml", [{"optimizer": "taso"}])
    storage = tmp_path / "runs"
    start = time.monotonic()
    assert main(["sweep", str(space), "--storage", str(storage), "--address", address]) == 2
    assert time.monotonic() - start < 60  # Ray alone retries an unreachable address for minutes
    line = _one_error_line(capsys, "sweep")
    assert f"--address: {problem}" in line and repr(address) in line, line
    assert not storage.exists()
    import ray

    assert not ray.is_initialized()


def test_the_ray_token_file_is_made_private(tmp_path: Path, monkeypatch) -> None:
    from taso_tune.tuning.preflight import private_token_file

    monkeypatch.setenv("HOME", str(tmp_path))
    token = tmp_path / ".ray" / "auth_token"
    token.parent.mkdir()
    token.write_text("secret")
    token.chmod(0o644)  # as Ray writes it
    private_token_file()
    assert token.stat().st_mode & 0o777 == 0o600
    assert token.read_text() == "secret"
