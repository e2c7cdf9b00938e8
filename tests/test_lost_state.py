"""A Ray Tune state that cannot be rebuilt costs only the trials it held, on real Ray: `resume` names
the lost trials and `--rerun-lost`; with the flag every finished trial is kept as it is and only the
lost ones train again (same configurations and seeds), each from the last checkpoint its folder
holds, else from the start; `report`, `export` and the summary read the whole as one experiment; a
second resume finds nothing to do; an experiment that lost nothing is refused."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import ray
from sweep_helpers import result_records, shutdown_ray, trial_dirs, write_space
from test_disk_faults import _mount, tmpfs  # noqa: F401  (the fixture)

from taso_tune.cli import main
from taso_tune.core.records import HPARAMS_FILE, LOCK_FILE, RERUN_FILE, SPACE_FILE
from taso_tune.experiment.layout import RERUN_FOLDER
from taso_tune.experiment.recovery import session_copies
from taso_tune.results.experiment import load_experiment
from taso_tune.spaces import load_space

#: 4 configurations x 2 seeds, 2 epochs: one trial a configuration, a checkpoint every epoch.
BLOCKS = [
    {"optimizer": "taso", "lr": {"grid": [0.02, 0.05]}},
    {"optimizer": "adagrad", "lr": {"grid": [0.02, 0.05]}},
]


def _cut(trial: Path, keep_checkpoint: bool) -> None:
    """Make ``trial`` look stopped after its first epoch: its last line gone, with the checkpoint
    of that epoch kept or none left."""
    lines = (trial / "result.json").read_text().splitlines(keepends=True)
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2]
    (trial / "result.json").write_text(lines[0])
    for record in records[1:] if keep_checkpoint else records:
        shutil.rmtree(trial / record["checkpoint_dir_name"])
    if keep_checkpoint:
        assert (trial / records[0]["checkpoint_dir_name"] / "run_state.pt").is_file()


def _epochs(trial: Path) -> list[int]:
    return [r["epoch"] for r in result_records(trial)]


def _used(folder: Path) -> int:
    info = os.statvfs(folder)
    return (info.f_blocks - info.f_bfree) * info.f_frsize


@pytest.mark.ray
def test_lost_trials_rerun_from_their_checkpoints_and_the_rest_is_kept(
    tmp_path: Path,
    tmpfs: Path,  # noqa: F811
    ray_cleanup,
    capsys,
) -> None:
    space = write_space(
        tmp_path / "space.yaml",
        BLOCKS,
        name="lost",
        train={"epochs": 2},
        seeds=2,
        max_concurrent=2,
    )
    assert main(["sweep", str(space), "--storage", str(tmpfs), "--no-report"]) == 0
    shutdown_ray()
    experiment = tmpfs / "lost"
    kept, resumed, restarted, unstarted = trial_dirs(experiment)
    kept_lines = (kept / "result.json").read_bytes()
    _cut(resumed, keep_checkpoint=True)
    _cut(restarted, keep_checkpoint=False)
    unstarted_config = result_records(unstarted)[-1]["config_id"]
    shutil.rmtree(unstarted)
    (state,) = experiment.glob("experiment_state-*.json")
    whole = state.read_text()
    state.write_text(whole[: len(whole) // 2])
    for copy in session_copies(state.name):  # no good copy left on this host
        os.remove(copy)
    capsys.readouterr()

    # without the flag: one line naming the lost trials and the way on; nothing starts
    assert main(["resume", str(experiment), "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert (
        f"the unfinished trials are lost ({resumed.name}, {restarted.name}); the 1 finished "
        f"trials stay readable by `taso-tune report` and `export`; `taso-tune resume "
        f"{experiment} --rerun-lost` keeps them and trains only the lost trials again" in err[0]
    ), err[0]
    assert not ray.is_initialized()

    # with it, on a storage too small for what the rerun writes: refused, the folder as it was
    _mount(tmpfs, f"remount,size={_used(tmpfs) + (256 << 10)}")
    assert main(["resume", str(experiment), "--rerun-lost", "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert re.search(
        rf"EXPERIMENT: too little space in {re.escape(str(tmpfs))}: the resume writes up to "
        r"[0-9.]+ [kM]B \(checkpoints of [0-9.]+ kB x 2 seeds x 2 kept x 3 trials",
        err[-1],
    ), err[-1]
    assert not (experiment / RERUN_FILE).exists() and state.is_file()
    assert not (experiment / RERUN_FOLDER).exists()
    assert not (experiment / LOCK_FILE).exists()
    shutdown_ray()

    _mount(tmpfs, "remount,size=64m")
    (experiment / HPARAMS_FILE).unlink()  # a sweep from before it was written: resume writes it
    assert main(["resume", str(experiment), "--rerun-lost", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "keeping the 1 finished trials as they are; training the 3 lost trials again" in out
    checkpoint = result_records(resumed)[0]["checkpoint_dir_name"]
    assert (
        f"  {resumed.name}: from its checkpoint after epoch 1 of 2, loading "
        f"{experiment}/{resumed.name}/{checkpoint}/run_state.pt" in out
    )
    assert (experiment / HPARAMS_FILE).is_file()
    rerun_config = json.loads((experiment / RERUN_FILE).read_text())["trials"]
    assert f"{resumed.name}/{checkpoint}" in [t["trial"]["from_checkpoint"] for t in rerun_config]
    assert f"  {restarted.name}: from the start (its folder holds no checkpoint)" in out
    assert re.search(rf"  {unstarted_config} seeds \[0, 1\]: from the start \(it had not", out)
    assert (experiment / f"damaged-{state.name}").is_file() and not state.exists()
    shutdown_ray()

    # the finished trial untouched; each lost one trained only what its checkpoint lacked
    assert (kept / "result.json").read_bytes() == kept_lines
    reruns = {result_records(d)[-1]["config_id"]: d for d in trial_dirs(experiment / RERUN_FOLDER)}
    config_of = {d: result_records(d)[-1]["config_id"] for d in (resumed, restarted)}
    assert set(reruns) == {config_of[resumed], config_of[restarted], unstarted_config}
    assert _epochs(reruns[config_of[resumed]]) == [2]
    assert _epochs(reruns[config_of[restarted]]) == [1, 2]
    assert _epochs(reruns[unstarted_config]) == [1, 2]

    # one experiment: every configuration with all its seeds, each epoch once
    results = load_experiment(str(experiment))
    spec = load_space(str(experiment / SPACE_FILE))
    expected = {(c["config_id"], seed) for c in spec.configurations() for seed in (0, 1)}
    trials = results.trials
    assert set(zip(trials["config_id"], trials["seed"], strict=True)) == expected
    assert len(trials) == 8
    assert (trials["status"] == "complete").all(), trials[["trial_name", "status"]]
    assert (trials["epochs_run"] == 2).all()
    per_seed = results.epochs.groupby(["config_id", "seed"])["epoch"].apply(list)
    assert (per_seed.apply(lambda epochs: epochs == [1, 2])).all(), per_seed
    assert main(["report", str(experiment), "-o", str(tmp_path / "report.html")]) == 0
    assert main(["export", str(experiment), "-o", str(tmp_path / "defaults.yaml")]) == 0

    # a second resume, with the flag or without, finds nothing to do and starts nothing
    capsys.readouterr()
    for flags in (["--rerun-lost"], []):
        assert main(["resume", str(experiment), *flags, "--no-report"]) == 0
        assert f"{experiment}: all 4 trials finished; nothing to resume" in capsys.readouterr().out
        assert not ray.is_initialized()


def test_rerun_lost_on_an_experiment_that_lost_nothing_is_refused(tmp_path: Path, capsys) -> None:
    space = write_space(tmp_path / "space.yaml", [{"optimizer": "taso"}], name="fine")
    experiment = tmp_path / "runs" / "fine"
    experiment.mkdir(parents=True)
    shutil.copy(space, experiment / SPACE_FILE)
    (experiment / "experiment_state-2024-01-01_00-00-00.json").write_text('{"trial_data": []}')
    subprocess.run(["chmod", "-R", "go-w", str(tmp_path / "runs")], check=True)
    assert main(["resume", str(experiment), "--rerun-lost"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert (
        "--rerun-lost: nothing is lost: every Ray Tune state of the experiment can be read"
        in (err[0])
    )
    assert sorted(p.name for p in experiment.iterdir()) == [
        "experiment_state-2024-01-01_00-00-00.json",
        SPACE_FILE,
    ]
    assert not ray.is_initialized()
