"""A full or failing disk never costs the experiment, on real Ray with the storage on a small tmpfs the
test mounts (skipped where the machine cannot mount one; CI runs as root): a disk that fills mid-sweep,
or turns read-only, stops the sweep as Ctrl-C does (exit 74, one line, no traceback, no retry spent);
once there is room, resume finishes every trial without retraining a finished one; what Ray Tune
copies into the storage is never left truncated; a sweep that cannot fit is refused before Ray starts."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs
import pytest
import ray
from sweep_helpers import result_records, shutdown_ray, trial_dirs, write_space

from taso_tune.cli import main
from taso_tune.core.records import LOCK_FILE
from taso_tune.core.storage import STORAGE_FULL_EXIT, storage_full, tune_filesystem
from taso_tune.experiment.state import planned_trials
from taso_tune.results.experiment import load_experiment
from taso_tune.spaces import load_space

REPO = Path(__file__).resolve().parents[1]
#: 5 configurations of 2 seeds each, 3 epochs: 5 trials, each checkpointing 2 seeds every epoch.
BLOCKS = [
    {"optimizer": "taso", "lr": {"grid": [0.02, 0.05, 0.1]}},
    {"optimizer": "adagrad", "lr": {"grid": [0.02, 0.05]}},
]
PLANNED = 5
FINISHED = ("complete", "stopped-early", "diverged")


def _mount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", options, folder], check=True, capture_output=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An empty 64 MB tmpfs, unmounted after the test."""
    folder = tmp_path / "storage"
    folder.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", folder],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"cannot mount a tmpfs here (root is needed): {err}")
    try:
        yield folder
    finally:
        subprocess.run(["mount", "-o", "remount,rw", folder], capture_output=True)
        subprocess.run(["umount", "-l", folder], capture_output=True)


def _space(tmp_path: Path) -> Path:
    return write_space(
        tmp_path / "space.yaml",
        BLOCKS,
        name="disk",
        train={"epochs": 3},
        seeds=2,
        max_concurrent=2,
        max_failures=2,
    )


def _start_sweep(tmp_path: Path, storage: Path) -> subprocess.Popen:
    out, err = (open(tmp_path / f"sweep.{kind}", "w") for kind in ("out", "err"))  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "taso_tune.cli", "sweep", str(_space(tmp_path))]
        + ["--storage", str(storage)],
        stdout=out,
        stderr=err,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=tmp_path,
        start_new_session=True,
    )


def _wait_for_a_finished_trial(proc: subprocess.Popen, experiment: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for d in trial_dirs(experiment) if experiment.exists() else []:
            records = [r for r in result_records(d) if "epoch" in r] if d.exists() else []
            if records and records[-1]["epoch"] == records[-1]["planned_epochs"]:
                return
        assert proc.poll() is None, "the sweep ended before its disk could fail"
        time.sleep(0.1)
    pytest.fail("no trial finished within 300 s")


def _fill(storage: Path) -> None:
    """Write into ``storage`` until it is full."""
    with open(storage / "ballast", "wb") as ballast:
        try:
            while True:
                ballast.write(b"\0" * (1 << 16))
                ballast.flush()
        except OSError as err:
            assert err.errno == errno.ENOSPC


def _finished_lines(experiment: Path) -> dict[str, int]:
    trials = load_experiment(str(experiment)).trials
    done = set(trials.loc[trials["status"].isin(FINISHED), "trial_name"])
    return {d.name: len(result_records(d)) for d in trial_dirs(experiment) if d.name in done}


def _check_stopped(proc: subprocess.Popen, tmp_path: Path, storage: Path) -> dict[str, int]:
    """Exit 74, one line as the last, no traceback, no retry spent; the finished trials' records."""
    try:
        assert proc.wait(timeout=180) == STORAGE_FULL_EXIT
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    experiment = storage / "disk"
    err = (tmp_path / "sweep.err").read_text()
    out = (tmp_path / "sweep.out").read_text()
    for noise in ("Traceback", "Last sync command failed", "EOFError", "Error in trial"):
        assert noise not in err + out, noise
    last = err.strip().splitlines()[-1]
    match = re.fullmatch(
        rf"taso-tune sweep: stopped: the storage {re.escape(str(storage))} takes no more writes "
        r"\((.+), ([0-9.]+ [kMG]?B) free\): (\d+) of (\d+) planned trials finished; make room "
        r"there, "
        rf"then continue with `taso-tune resume {re.escape(str(experiment))}`",
        last,
    )
    assert match, last
    assert storage_full(OSError(match.group(1))) is not None, match.group(1)
    assert int(match.group(4)) == planned_trials(load_space(str(tmp_path / "space.yaml")))
    # Tune's saved state is whole, no trial failed and none was retried
    (state,) = experiment.glob("experiment_state-*.json")
    trials = json.loads(state.read_text())["trial_data"]
    assert len(trials) >= 1
    for trial, runtime in trials:
        assert json.loads(trial)["status"] != "ERROR"
        assert json.loads(runtime)["num_failures"] == 0
    assert not list(experiment.glob("*/error.txt"))
    before = _finished_lines(experiment)
    assert len(before) == int(match.group(3)) >= 1
    return before


def _check_resumed(tmp_path: Path, experiment: Path, before: dict[str, int]) -> None:
    """Every planned configuration and seed finished, as an undisturbed sweep would; the trials that
    finished before the fault were not trained again."""
    trials = load_experiment(str(experiment)).trials
    spec = load_space(str(tmp_path / "space.yaml"))
    expected = {(c["config_id"], seed) for c in spec.configurations() for seed in spec.seed_values}
    assert set(zip(trials["config_id"], trials["seed"], strict=True)) == expected
    assert len(trials) == len(expected) == PLANNED * 2
    assert trials["status"].isin(FINISHED).all(), trials[["trial_name", "status"]]
    assert (trials["epochs_run"] == 3).all()
    for folder in trial_dirs(experiment):  # no epoch lost between the last good copy and resume
        epochs = {r["epoch"] for r in result_records(folder) if "epoch" in r}
        assert epochs == {1, 2, 3}, (folder.name, epochs)
    after = {d.name: len(result_records(d)) for d in trial_dirs(experiment)}
    assert {name: after[name] for name in before} == before, "a finished trial trained again"
    assert not (experiment / LOCK_FILE).exists()


@pytest.mark.ray
def test_a_disk_that_fills_mid_sweep_stops_it_and_resume_finishes_it(
    tmp_path: Path, tmpfs: Path, ray_cleanup, capsys
) -> None:
    proc = _start_sweep(tmp_path, tmpfs)
    try:
        _wait_for_a_finished_trial(proc, tmpfs / "disk")
        _fill(tmpfs)
    finally:
        before = _check_stopped(proc, tmp_path, tmpfs)

    _mount(tmpfs, "remount,size=128m")  # the ballast stays: room is made by enlarging
    capsys.readouterr()
    assert main(["resume", str(tmpfs / "disk"), "--no-report"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    _check_resumed(tmp_path, tmpfs / "disk", before)


@pytest.mark.ray
def test_a_storage_turned_read_only_mid_sweep_stops_it_cleanly(
    tmp_path: Path, tmpfs: Path, ray_cleanup
) -> None:
    proc = _start_sweep(tmp_path, tmpfs)
    try:
        _wait_for_a_finished_trial(proc, tmpfs / "disk")
        _mount(tmpfs, "remount,ro")
    finally:
        _check_stopped(proc, tmp_path, tmpfs)


def test_a_sweep_that_cannot_fit_is_refused_before_ray(tmp_path: Path, tmpfs: Path, capsys) -> None:
    _mount(tmpfs, "remount,size=3m")
    assert main(["sweep", str(_space(tmp_path)), "--storage", str(tmpfs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert re.match(
        r"taso-tune sweep: error: --storage: too little space: the sweep writes up to [0-9.]+ MB "
        r"\(checkpoints of [0-9.]+ [kM]B x 2 seeds x 2 kept x 5 trials \(\+1 in flight for each of "
        r"2 running\), results [0-9.]+ kB\), [0-9.]+ MB free;",
        err[0],
    ), err[0]
    assert list(tmpfs.iterdir()) == []
    assert not ray.is_initialized()


def test_a_budget_sh_sweep_that_cannot_fit_is_refused_before_ray(
    tmp_path: Path, tmpfs: Path, capsys
) -> None:
    """Budget-aware successive halving is checked too: every rung's trials (all 5 configurations at
    1 epoch, the best 2 at 3) with their checkpoints and results."""
    _mount(tmpfs, "remount,size=3m")
    space = str(_space(tmp_path))
    assert main(["sweep", space, "--storage", str(tmpfs), "--scheduler", "budget-sh"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert re.match(
        r"taso-tune sweep: error: --storage: too little space: the sweep writes up to [0-9.]+ MB "
        r"\(checkpoints of [0-9.]+ [kM]B x 2 seeds x 2 kept x 7 trials over 2 rungs \(\+1 in "
        r"flight for each of 2 running\), results [0-9.]+ kB\), [0-9.]+ MB free;",
        err[0],
    ), err[0]
    assert list(tmpfs.iterdir()) == []
    assert not ray.is_initialized()


def test_a_copy_onto_a_full_disk_leaves_the_last_good_file_whole(tmpfs: Path) -> None:
    """What Ray Tune copies into local storage (its experiment state, result.json, checkpoints) goes
    through this file system: a copy that runs out of space leaves the previous file as it was."""
    _mount(tmpfs, "remount,size=1m")
    fs = tune_filesystem(str(tmpfs))
    state = tmpfs / "experiment_state.json"
    with fs.open_output_stream(str(state)) as out:
        out.write(b'{"trial_data": []}')
    big = tmpfs.parent / "big.json"
    big.write_bytes(b" " * (2 << 20))
    with pytest.raises(OSError) as raised:
        pyarrow.fs.copy_files(str(big), str(state), destination_filesystem=fs)
    assert storage_full(raised.value) is not None
    assert json.loads(state.read_text()) == {"trial_data": []}
    assert sorted(p.name for p in tmpfs.iterdir()) == ["experiment_state.json"]


def test_a_checkpoint_saved_onto_a_full_disk_is_a_storage_fault(tmpfs: Path) -> None:
    """A trial saves its checkpoint into the node's temporary folder before Ray Tune copies it: on
    one machine that folder is usually on the storage's own disk, and torch.save given a path fails
    there with a RuntimeError carrying no errno, which spent the trial's retries."""
    import torch

    from taso_tune.tuning.trainable import save_state

    _mount(tmpfs, "remount,size=1m")
    with pytest.raises(RuntimeError) as raised:
        save_state({"weights": torch.zeros(1 << 20)}, str(tmpfs / "state.pt"))
    full = storage_full(raised.value)
    assert full is not None and full.errno == errno.ENOSPC


def test_a_lock_that_cannot_be_written_on_a_full_disk_is_not_left_behind(tmpfs: Path) -> None:
    """A driver refused for a full disk leaves no empty lock file that would refuse every later
    driver, resume included, once there is room."""
    from taso_tune.core.errors import ConfigError
    from taso_tune.experiment.lock import ExperimentLock

    _mount(tmpfs, "remount,size=1m")
    experiment = tmpfs / "exp"
    experiment.mkdir()
    filler = tmpfs / "filler"
    with pytest.raises(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 4096)
    with pytest.raises(ConfigError, match="cannot write its lock file .*No space left"):
        ExperimentLock(str(experiment), "resume").acquire()
    assert not (experiment / LOCK_FILE).exists()
    filler.unlink()
    with ExperimentLock(str(experiment), "resume"):
        assert (experiment / LOCK_FILE).exists()
    assert not (experiment / LOCK_FILE).exists()


@pytest.mark.ray
def test_a_damaged_tune_state_is_restored_or_its_lost_trials_are_named(
    tmp_path: Path, ray_cleanup, capsys, monkeypatch
) -> None:
    """A state cut short (written by something other than taso-tune's atomic writes) comes back
    from the copy the driver kept in Ray's session folder; where none is left, resume names the
    trials lost and the finished ones kept, in one line, and starts nothing."""
    space = write_space(
        tmp_path / "space.yaml", [{"optimizer": "taso"}, {"optimizer": "adagrad"}], name="cut"
    )
    storage = tmp_path / "runs"
    assert main(["sweep", str(space), "--storage", str(storage), "--no-report"]) == 0
    shutdown_ray()
    experiment = storage / "cut"
    (state,) = experiment.glob("experiment_state-*.json")
    whole = state.read_text()
    state.write_text(whole[: len(whole) // 2])
    capsys.readouterr()

    assert main(["resume", str(experiment), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert f"{state}: damaged; restored the driver's last good copy from " in out
    assert f"{experiment}: all 2 trials finished; nothing to resume" in out
    assert state.read_text() == whole
    assert not ray.is_initialized()

    state.write_text(whole[: len(whole) // 2])
    cut = next(d for d in trial_dirs(experiment) if d.name.startswith("adagrad"))
    lines = (cut / "result.json").read_text().splitlines(keepends=True)
    (cut / "result.json").write_text("".join(lines[:-1]))  # as if stopped before its last epoch
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "elsewhere"))  # no session folder left
    assert main(["resume", str(experiment), "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert (
        f"its Ray Tune state {state.name} cannot be read (JSONDecodeError) and no good copy of it "
        f"is left on this host: the unfinished trials are lost ({cut.name}); the 1 finished "
        "trials stay readable by `taso-tune report` and `export`" in err[0]
    )
    assert not ray.is_initialized()
