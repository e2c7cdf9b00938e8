"""One driver per experiment, and resume only of folders nobody else could have written, on real
files without Ray: the experiment lock (exclusive create, a dead holder's stale lock taken over, a
live or remote holder named), the trusted-folder rule (a crafted tuner.pkl never runs), progress
read from Tune's saved state, and the report's partial banner."""

from __future__ import annotations

import json
import os
import pickle
import pwd
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sweep_helpers import write_space
from test_results import write_fixture_experiment

from taso_tune.cli import main
from taso_tune.core.errors import ConfigError
from taso_tune.core.records import INTERRUPTED_FILE, LOCK_FILE, SPACE_FILE
from taso_tune.experiment.lock import ExperimentLock, Holder, is_stale, only_own_lock
from taso_tune.experiment.state import (
    all_finished,
    finished_trials,
    planned_trials,
    trial_statuses,
    write_interrupted,
)
from taso_tune.experiment.trust import check_trusted_folder
from taso_tune.results.experiment import load_experiment
from taso_tune.results.report_tables import partial_banner_html
from taso_tune.spaces import load_space, load_space_dict


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(folder: Path, host: str, pid: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    path.write_text(
        json.dumps(
            {
                "host": host,
                "pid": pid,
                "started": "2026-01-01T00:00:00+00:00",
                "command": "sweep",
                "token": "theirs",
            }
        )
    )
    return path


def test_the_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    experiment = tmp_path / "runs" / "exp"
    first = ExperimentLock(str(experiment), "sweep")
    first.acquire()
    held = json.loads((experiment / LOCK_FILE).read_text())
    assert (held["host"], held["pid"], held["command"]) == (
        socket.gethostname(),
        os.getpid(),
        "sweep",
    )
    assert only_own_lock(str(experiment))
    with pytest.raises(ConfigError) as caught:
        ExperimentLock(str(experiment), "resume").acquire()
    message = str(caught.value)
    assert (
        f"is in use by `taso-tune sweep` (pid {os.getpid()} on {socket.gethostname()}, since"
        in message
    )
    assert str(experiment / LOCK_FILE) in message
    first.release()
    assert not (experiment / LOCK_FILE).exists()
    with ExperimentLock(str(experiment), "resume"):  # free again
        assert (experiment / LOCK_FILE).exists()
    assert list(experiment.iterdir()) == []


def test_a_dead_holders_lock_on_this_host_is_taken_over(tmp_path: Path) -> None:
    experiment = tmp_path / "exp"
    _write_lock(experiment, socket.gethostname(), _dead_pid())
    assert is_stale(Holder.parse((experiment / LOCK_FILE).read_text()))
    with ExperimentLock(str(experiment), "resume") as lock:
        assert json.loads((experiment / LOCK_FILE).read_text())["token"] == lock.me.token
    assert (
        sorted(p.name for p in experiment.iterdir()) == []
    )  # the stale lock is gone, no copy left aside


@pytest.mark.parametrize("holder", ["live process here", "another host", "half-written"])
def test_a_lock_that_may_be_live_is_refused_and_kept(tmp_path: Path, holder: str) -> None:
    experiment = tmp_path / "exp"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        if holder == "half-written":
            experiment.mkdir()
            (experiment / LOCK_FILE).write_text("")
        else:
            host = socket.gethostname() if holder == "live process here" else "elsewhere.example"
            _write_lock(
                experiment, host, sleeper.pid if holder == "live process here" else _dead_pid()
            )
        before = (experiment / LOCK_FILE).read_text()
        with pytest.raises(ConfigError, match="is in use by") as caught:
            ExperimentLock(str(experiment), "resume").acquire()
        if holder == "another host":
            assert "on elsewhere.example" in str(caught.value) and "delete" in str(caught.value)
        assert (experiment / LOCK_FILE).read_text() == before
    finally:
        sleeper.kill()
        sleeper.wait()


def test_release_never_removes_another_drivers_lock(tmp_path: Path) -> None:
    experiment = tmp_path / "exp"
    lock = ExperimentLock(str(experiment), "sweep")
    lock.acquire()
    _write_lock(
        experiment, "elsewhere.example", 1
    )  # replaced behind its back (someone deleted ours)
    lock.release()
    assert json.loads((experiment / LOCK_FILE).read_text())["host"] == "elsewhere.example"


def test_a_lock_through_a_storage_uri(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/exp"
    with ExperimentLock(uri, "sweep"):
        assert (tmp_path / "exp" / LOCK_FILE).exists()
        with pytest.raises(ConfigError, match="is in use by `taso-tune sweep`"):
            ExperimentLock(uri, "resume").acquire()
    assert not (tmp_path / "exp" / LOCK_FILE).exists()


def test_a_second_sweep_of_a_locked_name_is_refused(tmp_path: Path, capsys) -> None:
    space = write_space(tmp_path / "space.yaml", [{"optimizer": "taso"}])
    storage = tmp_path / "runs"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(storage / "tiny", socket.gethostname(), sleeper.pid)
        assert main(["sweep", str(space), "--storage", str(storage)]) == 2
    finally:
        sleeper.kill()
        sleeper.wait()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"is in use by `taso-tune sweep` (pid {sleeper.pid} on" in err[0], err
    assert sorted(p.name for p in (storage / "tiny").iterdir()) == [LOCK_FILE]


# --- resume runs code from the folder: only folders you alone can write -------------------------------


class _Crafted:
    """Unpickling this writes a marker file: what a crafted tuner.pkl could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def _experiment_with_crafted_state(tmp_path: Path) -> tuple[Path, Path]:
    experiment = tmp_path / "runs" / "tiny"
    experiment.mkdir(parents=True)
    write_space(experiment / SPACE_FILE, [{"optimizer": "taso"}])
    marker = tmp_path / "marker"
    (experiment / "tuner.pkl").write_bytes(pickle.dumps(_Crafted(marker)))
    (experiment / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": []}')
    for path in (experiment, *experiment.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return experiment, marker


@pytest.mark.parametrize(
    "case",
    [
        "group-writable folder",
        "world-writable tuner.pkl",
        "linked tuner.pkl",
        "someone else's tuner.pkl",
    ],
)
def test_resume_refuses_a_folder_others_could_have_written(
    tmp_path: Path, capsys, case: str
) -> None:
    experiment, marker = _experiment_with_crafted_state(tmp_path)
    pkl = experiment / "tuner.pkl"
    if case == "group-writable folder":
        experiment.chmod(0o775)
        why = f"{experiment} is writable by group (mode 775)"
    elif case == "world-writable tuner.pkl":
        pkl.chmod(0o646)
        why = f"{pkl} is writable by others (mode 646)"
    elif case == "linked tuner.pkl":
        target = tmp_path / "elsewhere.pkl"
        pkl.rename(target)
        pkl.symlink_to(target)
        why = f"{pkl} is a symbolic link"
    else:
        if os.geteuid() != 0:
            pytest.skip("only root can give a file away")
        nobody = pwd.getpwnam("nobody")
        os.chown(pkl, nobody.pw_uid, nobody.pw_gid)
        why = f"{pkl} belongs to nobody, not to you (root)"
    assert main(["resume", str(experiment)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and why in err[0] and "can run code" in err[0], err
    assert not marker.exists()
    assert not (experiment / LOCK_FILE).exists()


def test_a_private_folder_is_trusted(tmp_path: Path) -> None:
    experiment, marker = _experiment_with_crafted_state(tmp_path)
    (experiment / "rung-0-3ep").mkdir(mode=0o755)
    check_trusted_folder(
        str(experiment)
    )  # passes: the crafted file would run, which docs/reliability.md says
    (experiment / "rung-0-3ep" / "tuner.pkl").write_bytes(b"")
    (experiment / "rung-0-3ep" / "tuner.pkl").chmod(0o664)
    with pytest.raises(ConfigError, match=r"rung-0-3ep/tuner.pkl is writable by group"):
        check_trusted_folder(str(experiment))
    assert not marker.exists()


# --- progress from Tune's saved state, and the partial banner ------------------------------------------


def test_progress_is_read_from_tunes_state(tmp_path: Path) -> None:
    experiment = write_fixture_experiment(tmp_path)  # 10 trials TERMINATED, 1 ERROR
    assert sorted(trial_statuses(str(experiment))) == ["ERROR"] + ["TERMINATED"] * 10
    assert finished_trials(str(experiment)) == 10
    assert trial_statuses(str(tmp_path / "missing")) is None
    spec = load_space(
        str(
            write_space(tmp_path / "space.yaml", [{"optimizer": "taso", "lr": {"grid": [0.1] * 1}}])
        )
    )
    assert not all_finished(str(experiment), spec, 11)  # one trial errored: resume retries it
    state = experiment / "experiment_state-2026-01-01_00-00-00.json"
    data = json.loads(state.read_text())
    data["trial_data"] = [
        [json.dumps({**json.loads(t), "status": "TERMINATED"}), r] for t, r in data["trial_data"]
    ]
    state.write_text(json.dumps(data))
    assert all_finished(str(experiment), spec, 11)
    assert not all_finished(str(experiment), spec, 12)  # a planned trial Tune has not made yet


def _set_tune_status(experiment: Path, status_of: dict[str, str]) -> None:
    """Rewrite Tune's saved state: the trials in ``status_of`` (trial_id -> status) get that status."""
    state = experiment / "experiment_state-2026-01-01_00-00-00.json"
    data = json.loads(state.read_text())
    rows = []
    for trial_json, runtime in data["trial_data"]:
        trial = json.loads(trial_json)
        trial["status"] = status_of.get(trial["trial_id"], trial["status"])
        rows.append([json.dumps(trial), runtime])
    state.write_text(json.dumps({**data, "trial_data": rows}))


def test_a_trial_whose_last_report_is_its_end_counts_as_finished(tmp_path: Path) -> None:
    """A signal can stop the driver after a trial's last report and before Tune saved it as ended:
    the count in the interrupt message is then the one the report and export give."""
    experiment = write_fixture_experiment(tmp_path)
    trials = load_experiment(str(experiment)).trials
    complete = trials.loc[trials["status"] == "complete", "trial_id"].iloc[0]
    diverged = trials.loc[trials["status"] == "diverged", "trial_id"].iloc[0]
    stopped = trials.loc[trials["status"] == "stopped-early", "trial_id"].iloc[0]
    _set_tune_status(experiment, {complete: "RUNNING", diverged: "PENDING"})
    assert finished_trials(str(experiment)) == 10  # their records say they ended
    assert sorted(trial_statuses(str(experiment))).count("TERMINATED") == 8
    finished = (
        load_experiment(str(experiment))
        .trials["status"]
        .isin(["complete", "stopped-early", "diverged"])
    )
    assert finished.sum() == 10
    _set_tune_status(
        experiment, {stopped: "RUNNING"}
    )  # its records stop short of the planned epochs
    assert finished_trials(str(experiment)) == 9
    assert not load_experiment(str(experiment)).trials["status"].eq("stopped-early").any()
    result = (
        next(d for d in experiment.iterdir() if d.is_dir() and complete in d.name) / "result.json"
    )
    result.write_text(
        result.read_text() + '{"trial_id": "' + complete + '", "epo'
    )  # a line cut short
    assert finished_trials(str(experiment)) == 9  # read from the last whole line
    assert (
        load_experiment(str(experiment))
        .trials["status"]
        .isin(["complete", "stopped-early", "diverged"])
        .sum()
        == 9
    )
    assert finished_trials(str(tmp_path / "missing")) == 0
    result.write_text("{oops\n" + result.read_text())  # damage before the last line is an error
    with pytest.raises(ConfigError, match=r"result.json: line 1: is not JSON"):
        load_experiment(str(experiment))


def test_the_report_of_an_interrupted_sweep_says_it_is_partial(tmp_path: Path) -> None:
    experiment = write_fixture_experiment(tmp_path)
    assert partial_banner_html(load_experiment(str(experiment))) == ""
    write_interrupted(str(experiment), 15, planned=24, finished=3)
    record = json.loads((experiment / INTERRUPTED_FILE).read_text())
    assert (record["signal"], record["planned_trials"], record["finished_trials"]) == (
        "SIGTERM",
        24,
        3,
    )
    banner = partial_banner_html(load_experiment(str(experiment)))
    # the fixture's trials: 8 complete, 1 stopped early, 1 diverged are finished; 1 errored is not
    assert "<b>Partial results.</b> The sweep was stopped by SIGTERM (" in banner
    assert ": 10 of 24 planned trials finished." in banner
    assert f"<code>taso-tune resume {experiment}</code> continues it" in banner
    out = tmp_path / "report.html"
    assert main(["report", str(experiment), "-o", str(out)]) == 0
    html = out.read_text()
    assert html.index('id="partial"') < html.index('<section id="provenance">')
    (experiment / INTERRUPTED_FILE).write_text("{not json")
    assert "stopped by a signal: 10 trials finished" in partial_banner_html(
        load_experiment(str(experiment))
    )


@pytest.mark.parametrize("case", ["garbage space file", "binary space file", "garbage Tune state"])
def test_resume_of_a_damaged_folder_is_one_line_and_starts_nothing(
    tmp_path: Path, capsys, case: str
) -> None:
    experiment, marker = _experiment_with_crafted_state(tmp_path)
    if case == "garbage space file":
        (experiment / SPACE_FILE).write_text("blocks: [unclosed\n")
        why = f"its {SPACE_FILE} cannot be read (ParserError)"
    elif case == "binary space file":
        (experiment / SPACE_FILE).write_bytes(bytes(range(128, 256)))
        why = f"its {SPACE_FILE} cannot be read (UnicodeDecodeError)"
    else:
        (experiment / "experiment_state-2026-01-01_00-00-00.json").write_text("{half a state")
        why = "its Ray Tune state experiment_state-2026-01-01_00-00-00.json cannot be read (JSONDecodeError)"
    assert main(["resume", str(experiment)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and why in err[0], err
    assert not marker.exists() and not (experiment / LOCK_FILE).exists()
    import ray

    assert not ray.is_initialized()


# --- the planned and finished counts are both of trials ----------------------------------------------

QUICKSTART = Path(__file__).resolve().parents[1] / "search_spaces" / "quickstart.yaml"


def _three_seed_experiment(root: Path, spec, endings: list[tuple[str, int]]) -> Path:
    """An experiment of ``spec`` (3 seeds, trained together) in Tune's layout: a trial a
    configuration, each ``(Tune status, epochs run)`` of ``endings``."""
    path = root / spec.name
    path.mkdir(parents=True)
    (path / SPACE_FILE).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    planned = spec.epochs
    trial_data = []
    for index, ((status, epochs_run), config) in enumerate(
        zip(endings, spec.configurations(), strict=False)
    ):
        trial_id = f"12670_{index:05d}"
        lines = []
        for epoch in range(1, epochs_run + 1):
            own = {
                "epoch": epoch,
                "total_epochs": planned,
                "lr": 0.05,
                "val_acc": 0.9,
                "val_loss": 0.3,
                "test_acc": 0.9,
                "test_loss": 0.3,
                "train_acc": 0.9,
                "train_loss": 0.3,
                "epoch_seconds": 0.5,
                "images_per_second": 2000.0,
                "status": "complete" if epoch == planned else "running",
            }
            summary = {k: v for k, v in own.items() if k not in ("total_epochs", "status")}
            lines.append(
                {
                    **summary,
                    "seeds_diverged": 0,
                    "per_seed": {str(seed): own for seed in spec.seed_values},
                    "config_id": config["config_id"],
                    "optimizer": config["optimizer"],
                    "seeds": list(spec.seed_values),
                    "planned_epochs": planned,
                    "model": "lenet5",
                    "dataset": "digits",
                    "batch_size": 64,
                    "num_classes": 10,
                    "split_sizes": {"train": 1293, "val": 144, "test": 360},
                    "node_id": "node",
                    "hp": {"lr": 0.05},
                    "diverged": False,
                    "trial_id": trial_id,
                }
            )
        folder = path / f"train_trial_{trial_id}"
        folder.mkdir()
        (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in lines))
        trial_data.append([json.dumps({"trial_id": trial_id, "status": status}), "{}"])
    (path / "experiment_state-2026-01-01_00-00-00.json").write_text(
        json.dumps({"trial_data": trial_data})
    )
    return path


def test_stop_counts_trials_planned_and_finished_alike(tmp_path: Path) -> None:
    """The quickstart plans 13 trials (13 configurations, each one trial of its 3 seeds), not 39:
    what `taso-tune stop` says is "2 of 13 planned trials finished"."""
    spec = load_space(str(QUICKSTART))
    assert (len(spec.configurations()), spec.seeds, spec.seeds_per_trial) == (13, 3, "all")
    assert planned_trials(spec) == 13
    per_seed = load_space_dict({**spec.to_dict(), "seeds_per_trial": 1, "scheduler": "none"})
    assert planned_trials(per_seed) == 39  # one trial per seed: 13 x 3
    endings = [("TERMINATED", 15), ("TERMINATED", 15), ("RUNNING", 4), ("PENDING", 0)]
    experiment = _three_seed_experiment(tmp_path, spec, endings)
    assert finished_trials(str(experiment)) == 2
    assert not all_finished(str(experiment), spec, planned_trials(spec))
    write_interrupted(
        str(experiment), 15, planned=planned_trials(spec), finished=finished_trials(str(experiment))
    )
    loaded = load_experiment(str(experiment))
    assert len(loaded.trials) == 3 * 3  # three trials reported, each three seeds
    assert loaded.finished_trials == 2
    assert ": 2 of 13 planned trials finished." in partial_banner_html(loaded)
