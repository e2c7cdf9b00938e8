"""What `resume --rerun-lost` decides and reads, without Ray, on a hand-written experiment folder
(`test_results.write_fixture_experiment`): which checkpoint files a rerun may load and that the plan
names them; checkpoints kept relative to the experiment, so a moved experiment still finds them; a
trial whose `result.json` is damaged left out of the results and said so; a Tune state that was never
saved counted as lost; the count of a rerun's trials; the session copies of a state trusted as the
folder is; the room a resume asks for; the HParams file and the temporary names of atomic writes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.fs
import pytest
from test_results import write_fixture_experiment

from taso_tune.core import storage
from taso_tune.core.errors import ConfigError, DamagedResults
from taso_tune.core.records import HPARAMS_FILE, RERUN_FILE, STATE_FILE
from taso_tune.experiment.layout import FROM_CHECKPOINT, RERUN_FOLDER
from taso_tune.experiment.reader import ExperimentReader, RerunRecord, read_space
from taso_tune.experiment.recovery import recover_state, set_aside
from taso_tune.experiment.state import experiment_planned, unfinished_checkpoint_bytes
from taso_tune.results.experiment import load_experiment
from taso_tune.tuning import preflight, rerun
from taso_tune.tuning.observe.tensorboard import ensure_experiment_summary
from taso_tune.tuning.rerun import RerunTrials, checkpoint_path, plan_rerun

#: The fixture's trial stopped after 1 of 3 epochs by an error, and one stopped early by ASHA.
ERRORED = "adagrad_lr=0.01_s1_abcde_00010"
STOPPED = "taso_alpha=25_beta=0.7_s2_abcde_00004"


def _lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "result.json").read_text().splitlines()]


def _write_lines(folder: Path, records: list[dict]) -> None:
    (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in records))


def _checkpoint(folder: Path, name: str, size: int = 100) -> Path:
    (folder / name).mkdir(parents=True)
    (folder / name / STATE_FILE).write_bytes(b"\0" * size)
    return folder / name


def _lose_state(experiment: Path) -> None:
    (state,) = experiment.glob("experiment_state-*.json")
    state.write_text(state.read_text()[:20])


@pytest.fixture
def lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture experiment with its Tune state cut short, no session copy of it on this host,
    and the errored trial's last report naming ``checkpoint_000000`` (which its folder holds)."""
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "no-ray"))
    experiment = write_fixture_experiment(tmp_path / "runs")
    records = _lines(experiment / ERRORED)
    records[-1]["checkpoint_dir_name"] = "checkpoint_000000"
    _write_lines(experiment / ERRORED, records)
    _checkpoint(experiment / ERRORED, "checkpoint_000000")
    _lose_state(experiment)
    return experiment


def test_a_checkpoint_is_taken_only_from_the_trials_own_folder(lost: Path, capsys) -> None:
    """`checkpoint_dir_name` comes from result.json, which nothing checks: a name that is not
    Tune's `checkpoint_<n>` (absolute, `..`) is never loaded; the plan names the file it loads."""
    outside = _checkpoint(lost.parent, "elsewhere")
    records = _lines(lost / STOPPED)
    for bad in (str(outside), "../elsewhere", "checkpoint_0/../../elsewhere"):
        records[-1]["checkpoint_dir_name"] = bad
        _write_lines(lost / STOPPED, records)
        found = {t.folder: t for t in recover_state(str(lost), rerun_lost=True).lost.lost}
        assert (found[STOPPED].from_epoch, found[STOPPED].checkpoint) == (0, None), bad
    assert (found[ERRORED].from_epoch, found[ERRORED].checkpoint) == (
        1,
        f"{ERRORED}/checkpoint_000000",
    )

    capsys.readouterr()
    record = plan_rerun(
        str(lost), read_space(str(lost)), recover_state(str(lost), rerun_lost=True).lost
    )
    out = capsys.readouterr().out
    by_folder = {t.lost: t for t in record.trials}
    # kept relative to the experiment, in the record and in Tune's config alike
    assert by_folder[ERRORED].trial[FROM_CHECKPOINT] == f"{ERRORED}/checkpoint_000000"
    assert by_folder[STOPPED].trial[FROM_CHECKPOINT] is None
    assert (
        f"  {ERRORED}: from its checkpoint after epoch 1 of 3, loading "
        f"{lost}/{ERRORED}/checkpoint_000000/{STATE_FILE} (torch.load with weights_only" in out
    )
    assert f"  {STOPPED}: from the start (its folder holds no checkpoint)" in out


def test_a_moved_experiment_resolves_its_checkpoints_where_it_is_now(lost: Path) -> None:
    record = plan_rerun(
        str(lost), read_space(str(lost)), recover_state(str(lost), rerun_lost=True).lost
    )
    set_aside(str(lost), record)
    moved = lost.parent / "moved"
    lost.rename(moved)
    stored = ExperimentReader(str(moved)).rerun
    assert stored == record
    source = RerunTrials(read_space(str(moved)), [t.trial for t in stored.trials], str(moved))
    flat = source.flat_config({"trial": next(t.trial for t in stored.trials if t.from_epoch)})
    assert flat[FROM_CHECKPOINT] == f"{moved}/{ERRORED}/checkpoint_000000"
    assert (Path(flat[FROM_CHECKPOINT]) / STATE_FILE).is_file()
    for bad in ("/etc", "../x/checkpoint_000000", f"{ERRORED}/checkpoint_0/x", f"{ERRORED}/x"):
        with pytest.raises(ValueError, match="is not <trial folder>/checkpoint_<n>"):
            checkpoint_path(str(moved), bad)


def test_a_record_whose_checkpoint_points_elsewhere_is_refused(lost: Path) -> None:
    record = plan_rerun(
        str(lost), read_space(str(lost)), recover_state(str(lost), rerun_lost=True).lost
    )
    data = json.loads(record.to_json())
    data["trials"][0]["trial"][FROM_CHECKPOINT] = "/home/someone/checkpoint_000001"
    (lost / RERUN_FILE).write_text(json.dumps(data))
    with pytest.raises(
        DamagedResults, match=rf"its {RERUN_FILE} cannot be read .*{FROM_CHECKPOINT}"
    ):
        assert ExperimentReader(str(lost)).rerun is None


def test_a_lost_trial_with_a_damaged_result_is_left_out_and_said_so(lost: Path, capsys) -> None:
    """A grid reruns its configuration among those that had not started; the folder leaves the
    experiment's own run, so the results read once the rerun is recorded."""
    name = "taso_alpha=25_beta=0.7_s1_abcde_00003"
    damaged = lost / name
    (damaged / "result.json").write_text('{"epoch": "one"}\n')
    found = recover_state(str(lost), rerun_lost=True).lost
    assert [t.folder for t in found.lost if t.damaged] == [name]
    capsys.readouterr()
    record = plan_rerun(str(lost), read_space(str(lost)), found)
    out = capsys.readouterr().out
    assert record.damaged == [name]
    assert name not in {t.lost for t in record.trials}
    assert (
        f"  {name}: its result.json cannot be read: left out of the results (the folder stays "
        "as it is); its configuration trains again below, as one that had not started" in out
    )
    assert "  taso_alpha=25_beta=0.7 seeds [1]: from the start (it had not started)" in out
    with pytest.raises(DamagedResults):
        load_experiment(str(lost))
    set_aside(str(lost), record)
    assert ExperimentReader(str(lost)).rerun.damaged == [name]
    names = set(load_experiment(str(lost)).trials["trial_name"])
    assert name not in names and damaged.is_dir()


def test_a_missing_tune_state_with_trial_folders_is_lost_not_a_dead_end(tmp_path: Path) -> None:
    experiment = write_fixture_experiment(tmp_path / "runs")
    (experiment / "experiment_state-2026-01-01_00-00-00.json").unlink()
    with pytest.raises(ConfigError) as raised:
        recover_state(str(experiment))
    assert "it holds trial folders but no Ray Tune state (experiment_state-*.json" in str(
        raised.value
    )
    assert f"`taso-tune resume {experiment} --rerun-lost`" in str(raised.value)
    found = recover_state(str(experiment), rerun_lost=True).lost
    assert (
        found.state == ""
        and len(found.kept) == 9
        and {t.folder for t in found.lost}
        == {
            ERRORED,
            STOPPED,
        }
    )
    # nothing to move aside: the record alone
    set_aside(str(experiment), RerunRecord("", found.kept, []))
    assert ExperimentReader(str(experiment)).rerun.state == ""


def test_a_budget_sh_top_folder_without_state_is_not_lost(tmp_path: Path) -> None:
    experiment = tmp_path / "bsh"
    (experiment / "rung-0-1ep").mkdir(parents=True)
    assert recover_state(str(experiment), rerun_lost=True).lost is None


def test_a_rerun_counts_the_trials_kept_and_rerun(lost: Path, capsys) -> None:
    """A rerun plans the trials it kept and reran, not the space's (an Optuna rerun has fewer:
    proposals never made, trials whose record was damaged); one with nothing to rerun starts
    nothing (no 0-trial grid)."""
    spec = read_space(str(lost))
    kept = recover_state(str(lost), rerun_lost=True).lost.kept
    record = RerunRecord("state.json", kept, [])
    set_aside(str(lost), record)
    assert experiment_planned(str(lost), spec) == len(kept) == 9
    result = rerun.run_rerun(str(lost), spec, record, str(lost.parent), None)
    assert result.trials == 9 and not (lost / RERUN_FOLDER).exists()
    assert f"{lost}: no lost trial to train again" in capsys.readouterr().out


def test_the_rerun_labels_its_trials_with_the_experiments_name(lost: Path, monkeypatch) -> None:
    """Gauges and actor names carry the experiment's name, not the rerun folder's."""
    record = plan_rerun(
        str(lost), read_space(str(lost)), recover_state(str(lost), rerun_lost=True).lost
    )
    seen = {}

    class Stop(Exception):
        pass

    def build_tuner(source, datasets, storage, name, *, restore, label):
        seen.update(storage=storage, name=name, label=label)
        raise Stop

    monkeypatch.setattr(rerun, "prepare", lambda *args, **kwargs: {})
    monkeypatch.setattr(rerun, "build_tuner", build_tuner)
    (lost / HPARAMS_FILE).unlink(missing_ok=True)
    with pytest.raises(Stop):
        rerun.run_rerun(str(lost), read_space(str(lost)), record, str(lost.parent), None, new=True)
    assert seen == {"storage": str(lost), "name": RERUN_FOLDER, "label": lost.name}
    assert (lost / HPARAMS_FILE).is_file()  # written on resume where it was missing


def _session_copy(root: Path, name: str, text: str) -> Path:
    folder = root / "ray" / "session_1" / "artifacts" / "t" / "run" / "driver_artifacts"
    folder.mkdir(parents=True)
    (folder / name).write_text(text)
    return folder


def test_a_session_copy_is_taken_back_only_if_only_you_could_write_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = write_fixture_experiment(tmp_path / "runs")
    (state,) = experiment.glob("experiment_state-*.json")
    whole = state.read_text()
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "tmp"))
    copies = _session_copy(tmp_path / "tmp", state.name, whole)
    os.chmod(copies.parent, 0o777)  # anyone could have put it there
    _lose_state(experiment)
    with pytest.raises(ConfigError, match="no good copy of it is left on this host"):
        recover_state(str(experiment))
    os.chmod(copies.parent, 0o755)
    os.chmod(copies / state.name, 0o666)
    with pytest.raises(ConfigError, match="no good copy of it is left on this host"):
        recover_state(str(experiment))
    os.chmod(copies / state.name, 0o644)
    notes = recover_state(str(experiment)).notes
    assert notes == [
        f"{state}: damaged; restored the driver's last good copy from {copies}/{state.name}"
    ]
    assert state.read_text() == whole


def test_unfinished_trials_checkpoints_are_replaced_not_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A resume asks for room for the growth only: what its unfinished trials' checkpoints hold
    now is subtracted (they are replaced); finished trials' checkpoints and other folders are not."""
    experiment = write_fixture_experiment(tmp_path / "runs")
    state = next(experiment.glob("experiment_state-*.json"))
    data = json.loads(state.read_text())
    data["trial_data"][4][0] = json.dumps({"trial_id": "abcde_00004", "status": "RUNNING"})
    state.write_text(json.dumps(data))
    _checkpoint(experiment / ERRORED, "checkpoint_000000", 3000)  # ERROR: resumed
    _checkpoint(experiment / STOPPED, "checkpoint_000001", 5000)  # RUNNING: resumed
    _checkpoint(experiment / STOPPED, "not_a_checkpoint", 7000)
    finished = next(d for d in experiment.iterdir() if d.name.endswith("_abcde_00000"))
    _checkpoint(finished, "checkpoint_000002", 11000)
    assert unfinished_checkpoint_bytes(str(experiment)) == 8000

    monkeypatch.setattr(preflight, "sweep_bytes", lambda *args: (10000, "how"))
    monkeypatch.setattr(preflight, "free_bytes", lambda path: 2200)
    writes = preflight.Writes(((2, 3),), "resume")
    source = RerunTrials(read_space(str(experiment)), [], str(experiment))
    preflight.check_free_space(source, {}, str(experiment.parent), writes, str(experiment))
    err = capsys.readouterr().err
    assert (
        "the resume writes up to 2.0 kB (how; less the 8.0 kB of checkpoints its unfinished" in err
    )
    with pytest.raises(ConfigError, match="the sweep writes up to 10.0 kB"):
        preflight.check_free_space(source, {}, str(experiment.parent), preflight.Writes(((2, 3),)))


def test_the_hparams_summary_is_written_when_missing_and_kept_when_there(tmp_path: Path) -> None:
    experiment = write_fixture_experiment(tmp_path / "runs")
    spec = read_space(str(experiment))
    assert ensure_experiment_summary(str(experiment), spec)
    written = (experiment / HPARAMS_FILE).read_bytes()
    assert not ensure_experiment_summary(str(experiment), spec)
    assert (experiment / HPARAMS_FILE).read_bytes() == written


class _Recording(storage.AtomicLocalFiles):
    opened: list[str] = []

    def open_output_stream(self, path: str, metadata):
        type(self).opened.append(os.path.basename(path))
        return super().open_output_stream(path, metadata)


def test_temporary_files_of_atomic_writes_are_named_after_nothing(tmp_path: Path, monkeypatch):
    """TensorBoard reads every file whose name holds `tfevents`, a half-written one too."""
    fs = pyarrow.fs.PyFileSystem(_Recording())
    monkeypatch.setattr(storage, "filesystem", lambda path: (fs, str(path)))
    storage.write_experiment_file(str(tmp_path), HPARAMS_FILE, b"events")
    assert _Recording.opened and not any("tfevents" in name for name in _Recording.opened)
    assert sorted(p.name for p in tmp_path.iterdir()) == [HPARAMS_FILE]

    trial = tmp_path / "trial"
    trial.mkdir()
    stream = storage.tune_filesystem(str(trial)).open_output_stream(
        str(trial / "events.out.tfevents.1.node")
    )
    stream.write(b"half")
    (written,) = trial.iterdir()  # before the close: the temporary file only
    assert written.name.startswith(storage.TEMP_PREFIX) and "tfevents" not in written.name
    stream.close()
    assert [p.name for p in trial.iterdir()] == ["events.out.tfevents.1.node"]
    shutil.rmtree(trial)


def test_the_experiment_as_of_before_its_rerun_is_read_without_it(lost: Path) -> None:
    """A job that ended before `resume --rerun-lost` planned its rerun (a stopped job's row in
    `taso-tune jobs`) reads every trial folder as it was, the lost ones included."""

    def folders(reader: ExperimentReader) -> list[str]:
        return [folder for run in reader.runs() for folder in reader.trial_folders(run)]

    before = folders(ExperimentReader(str(lost)))
    record = plan_rerun(
        str(lost), read_space(str(lost)), recover_state(str(lost), rerun_lost=True).lost
    )
    set_aside(str(lost), record)
    planned_at = (lost / RERUN_FILE).stat().st_mtime
    now = ExperimentReader(str(lost))
    assert now.rerun == record and folders(now) != before
    as_of = ExperimentReader(str(lost), written_by=planned_at - 1)
    assert as_of.rerun is None and folders(as_of) == before
    assert ExperimentReader(str(lost), written_by=planned_at + 1).rerun == record
