"""Interrupts and concurrency on real Ray, with real ``taso-tune`` processes on the quickstart space:
Ctrl-C and SIGTERM mid-sweep stop it cleanly (exit 130/143, how far it got, the resume command, the
experiment marked partial); resume finishes it without losing or retraining a finished trial; a second
resume of the same experiment is refused while the first runs; a finished experiment resumes to
nothing; trials no node can run are refused before any starts."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import pytest
import ray
from sweep_helpers import result_records, shutdown_ray, trial_dirs, write_space

from taso_tune.cli import main
from taso_tune.core.records import INTERRUPTED_FILE, LOCK_FILE
from taso_tune.experiment.state import finished_trials
from taso_tune.results.experiment import load_experiment
from taso_tune.tuning.prepare import TUNE_ANALYSIS_LOGGER
from taso_tune.tuning.trainable import _quiet_shutdown

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"
EPOCHS = 4  # a trial takes a second or two
PLANNED = 13  # the quickstart's configurations, one seed each
FINISHED = ("complete", "stopped-early", "diverged")


@pytest.fixture
def ray_cleanup():
    yield
    shutdown_ray()


def _taso_tune(args: list[str], folder: Path, label: str) -> subprocess.Popen:
    """``taso-tune ARGS`` in its own session (so a signal to its group reaches it the way a terminal's
    Ctrl-C does), output to files: Ray's progress table would fill a pipe."""
    out, err = (open(folder / f"{label}.{kind}", "w") for kind in ("out", "err"))  # noqa: SIM115
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "taso_tune.cli", *args],
        stdout=out,
        stderr=err,
        env=env,
        cwd=folder,
        start_new_session=True,
    )


def _start_sweep(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    storage = tmp_path / "runs"
    proc = _taso_tune(
        [
            "sweep",
            str(QUICKSTART),
            "--storage",
            str(storage),
            "--epochs",
            str(EPOCHS),
            "--seeds",
            "1",
            "--scheduler",
            "asha",  # stops most trials early: a shorter sweep to interrupt and resume
        ],
        tmp_path,
        "sweep",
    )
    return proc, storage / "quickstart"


def _wait_for_a_finished_trial(proc: subprocess.Popen, experiment: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for d in trial_dirs(experiment) if experiment.exists() else []:
            records = result_records(d)
            if records and records[-1]["epoch"] == records[-1]["planned_epochs"]:
                return
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        time.sleep(0.1)
    pytest.fail("no trial finished within 300 s")


def _finished_lines(experiment: Path) -> dict[str, int]:
    """Each finished trial's folder and how many epoch records it holds."""
    trials = load_experiment(str(experiment)).trials
    done = set(trials.loc[trials["status"].isin(FINISHED), "trial_name"])
    return {d.name: len(result_records(d)) for d in trial_dirs(experiment) if d.name in done}


def _check_stopped(
    proc: subprocess.Popen, tmp_path: Path, experiment: Path, sig: signal.Signals
) -> dict[str, int]:
    """The interrupted sweep's exit, its last line, the flag it left; the finished trials' records."""
    assert proc.wait(timeout=120) == 128 + sig
    err = (tmp_path / "sweep.err").read_text()
    out = (tmp_path / "sweep.out").read_text()
    for noise in (
        "Traceback",
        "Tuner.restore",
        "Stack trace",
        "core dumped",
        "SystemExit",
        "Token authentication is enabled",
        "Failed to fetch metrics",  # Tune's result grid, on trials with no report yet
    ):
        assert noise not in err + out, noise
    finished = finished_trials(str(experiment))
    assert 1 <= finished < PLANNED
    assert err.strip().splitlines()[-1] == (
        f"taso-tune sweep: stopped by {sig.name}: {finished} of {PLANNED} planned trials finished; continue "
        f"with `taso-tune resume {experiment}` (partial report: `taso-tune report {experiment}`)"
    )
    record = json.loads((experiment / INTERRUPTED_FILE).read_text())
    assert (record["signal"], record["planned_trials"], record["finished_trials"]) == (
        sig.name,
        PLANNED,
        finished,
    )
    assert not (experiment / LOCK_FILE).exists()
    assert not (experiment / "report.html").exists() and not (experiment / "defaults.yaml").exists()
    before = _finished_lines(experiment)
    assert len(before) == finished
    return before


def _check_resumed(experiment: Path, before: dict[str, int]) -> None:
    trials = load_experiment(str(experiment)).trials
    assert len(trials) == PLANNED
    assert trials["status"].isin(FINISHED).all(), trials[["trial_name", "status", "epochs_run"]]
    after = {d.name: len(result_records(d)) for d in trial_dirs(experiment)}
    assert {name: after[name] for name in before} == before, (
        "a trial finished before the interrupt trained again"
    )
    assert not (experiment / INTERRUPTED_FILE).exists() and not (experiment / LOCK_FILE).exists()


@pytest.mark.ray
def test_ctrl_c_stops_a_sweep_cleanly_and_resume_finishes_it(
    tmp_path: Path, ray_cleanup, capsys
) -> None:
    proc, experiment = _start_sweep(tmp_path)
    try:
        _wait_for_a_finished_trial(proc, experiment)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
        before = _check_stopped(proc, tmp_path, experiment, signal.SIGINT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    report = tmp_path / "partial.html"
    assert main(["report", str(experiment), "-o", str(report)]) == 0
    assert f"of {PLANNED} planned trials finished" in report.read_text()

    capsys.readouterr()
    assert main(["resume", str(experiment)]) == 0
    _check_resumed(experiment, before)
    assert (experiment / "report.html").exists() and (experiment / "defaults.yaml").exists()
    assert "Traceback" not in capsys.readouterr().err
    # Tune's result grid warns of trials stopped before their first report ("Failed to fetch
    # metrics"), which the summary already counts: a resume leaves those warnings out
    assert logging.getLogger(TUNE_ANALYSIS_LOGGER).getEffectiveLevel() == logging.ERROR

    shutdown_ray()
    assert main(["resume", str(experiment), "--no-report"]) == 0
    assert (
        f"{experiment}: all {PLANNED} trials finished; nothing to resume" in capsys.readouterr().out
    )
    assert not ray.is_initialized()  # nothing was started
    _check_resumed(experiment, before)


@pytest.mark.ray
def test_sigterm_stops_a_sweep_and_a_second_resume_is_refused(tmp_path: Path, capsys) -> None:
    proc, experiment = _start_sweep(tmp_path)
    try:
        _wait_for_a_finished_trial(proc, experiment)
        proc.send_signal(signal.SIGTERM)  # what `kill` and `ray job stop` send
        before = _check_stopped(proc, tmp_path, experiment, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    first = _taso_tune(["resume", str(experiment), "--no-report"], tmp_path, "resume")
    try:
        deadline = time.monotonic() + 120
        while not (experiment / LOCK_FILE).exists():
            assert time.monotonic() < deadline and first.poll() is None, (
                "the first resume never took the lock"
            )
            time.sleep(0.1)
        capsys.readouterr()
        assert main(["resume", str(experiment)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert (
            f"taso-tune resume: error: experiment: is in use by `taso-tune resume` (pid {first.pid} on"
            in err[0]
        )
        assert first.wait(timeout=300) == 0, (tmp_path / "resume.err").read_text()[-3000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    _check_resumed(experiment, before)
    assert not ray.is_initialized()  # the refused resume started nothing


@pytest.mark.ray
def test_trials_no_node_can_run_are_refused_before_any_starts(
    tmp_path: Path, ray_cleanup, capsys
) -> None:
    space = write_space(tmp_path / "space.yaml", [{"optimizer": "taso"}], resources={"cpus": 512})
    storage = tmp_path / "runs"
    start = time.monotonic()
    assert main(["sweep", str(space), "--storage", str(storage)]) == 2
    assert time.monotonic() - start < 120
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(
        "taso-tune sweep: error: resources.cpus: per trial, more CPUs than any node of this "
        "Ray cluster has (the largest has "
    )
    assert "(got 512.0)" in err[0]
    assert not storage.exists()


def test_a_worker_shut_down_amid_a_callback_prints_no_traceback(monkeypatch) -> None:
    """Ray's SIGTERM handler raises SystemExit wherever the worker is; inside a weakref callback
    Python hands it to ``sys.unraisablehook``, whose default prints a traceback the driver shows.
    The trial's hook drops exactly that case."""

    class Thing:
        pass

    printed = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: _quiet_shutdown(u, default=printed.append))
    for error in (SystemExit(1), ValueError("a real bug")):
        thing = Thing()

        def callback(_ref, error=error):
            raise error

        ref = weakref.ref(thing, callback)
        del thing  # the callback runs now and its exception is unraisable
        assert ref() is None
    assert [type(u.exc_value) for u in printed] == [ValueError]
