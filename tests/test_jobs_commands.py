"""What `taso-tune stop` and `taso-tune jobs` print, over a stand-in for the cluster's Jobs API (the
same commands against a real Ray head are in ``test_ray_dashboard.py``): the resume command only
once the job has ended, and a listing that survives an experiment it cannot read."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_results import write_fixture_experiment

from taso_tune.cli import jobs as jobs_cli
from taso_tune.cli import main
from taso_tune.cluster.jobs import (
    RAY_STOP_WAIT_S,
    STOP_MARGIN_S,
    SweepJob,
    _sweep_job,
    best_result,
)

EXPERIMENT = "/shared/my runs/quick$sweep"


def _job(status: str, experiment: str = EXPERIMENT, stop_wait_s: float = 30, **more) -> SweepJob:
    return SweepJob(
        job_id="raysubmit_x",
        status=status,
        experiment=experiment,
        space_file="tiny.yaml",
        start_time_ms=more.get("start_time_ms", 1),
        end_time_ms=more.get("end_time_ms"),
        driver_exit_code=None,
        stop_wait_s=stop_wait_s,
    )


class StandInJobs:
    """Answers ``sweep`` with each of ``statuses`` in turn (the last one from then on)."""

    def __init__(self, statuses: list[str], listed: list[SweepJob] | None = None) -> None:
        self.statuses = statuses
        self.listed = listed or []
        self.stopped = False

    def sweep(self, job_id: str) -> SweepJob:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return _job(status)

    def stop(self, job_id: str) -> bool:
        self.stopped = True
        return True

    def sweeps(self) -> list[SweepJob]:
        return self.listed


class Clock:
    """``time`` for ``cli.jobs``: sleeping moves it on at once."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(jobs_cli, "time", clock)
    return clock


def _use(monkeypatch, jobs: StandInJobs) -> StandInJobs:
    monkeypatch.setattr(jobs_cli, "_jobs", lambda args: jobs)
    return jobs


def test_stop_prints_the_quoted_resume_command_once_the_job_has_ended(
    monkeypatch, clock: Clock, capsys
) -> None:
    _use(monkeypatch, StandInJobs(["RUNNING", "RUNNING", "STOPPED"]))
    argv = ["stop", "raysubmit_x", "--address", "http://h:8265", "--token-file", "my token"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "job raysubmit_x: STOPPED"
    command = out[1].removeprefix("continue it with: ")
    assert shlex.split(command) == [
        "taso-tune",
        "submit",
        "--resume",
        EXPERIMENT,
        "--address",
        "http://h:8265",
        "--token-file",
        "my token",
    ]


def test_stop_of_a_job_still_stopping_gives_no_resume_command(
    monkeypatch, clock: Clock, capsys
) -> None:
    """A resume now would find the sweep's driver alive and its experiment locked."""
    jobs = _use(monkeypatch, StandInJobs(["RUNNING"]))
    assert main(["stop", "raysubmit_x"]) == 1
    out = capsys.readouterr().out
    assert jobs.stopped
    # by default it waits out the job's own stop wait (30 s here) and a margin
    assert clock.now == 30 + STOP_MARGIN_S
    assert out.splitlines() == [
        f"job raysubmit_x is still stopping (RUNNING after {30 + STOP_MARGIN_S} s; Ray "
        "kills its driver 30 s after the SIGTERM)",
        "check with: taso-tune jobs; resume it once it has ended",
    ]
    assert "--resume" not in out
    clock.now = 0
    assert main(["stop", "raysubmit_x", "--wait", "5"]) == 1
    assert clock.now == 5 and "RUNNING after 5 s" in capsys.readouterr().out


def test_stop_refuses_a_negative_wait_before_asking_the_cluster(monkeypatch, capsys) -> None:
    jobs = _use(monkeypatch, StandInJobs(["RUNNING"]))
    assert main(["stop", "raysubmit_x", "--wait", "-1"]) == 2
    assert "--wait: must be 0 seconds or more (got -1.0)" in capsys.readouterr().err
    assert not jobs.stopped


def test_a_jobs_stop_wait_is_read_from_its_runtime_env() -> None:
    def details(runtime_env):
        return SimpleNamespace(
            metadata={"taso_tune": "sweep", "experiment": "e"},
            submission_id="raysubmit_x",
            job_id=None,
            status="RUNNING",
            start_time=1,
            end_time=None,
            runtime_env=runtime_env,
        )

    env = {"env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": "45"}}
    assert _sweep_job(details(env)).stop_wait_s == 45
    assert _sweep_job(details(None)).stop_wait_s == RAY_STOP_WAIT_S
    bad = {"env_vars": {"RAY_JOB_STOP_WAIT_TIME_S": "soon"}}
    assert _sweep_job(details(bad)).stop_wait_s == RAY_STOP_WAIT_S


def test_jobs_lists_every_row_when_one_experiment_cannot_be_read(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    good = write_fixture_experiment(tmp_path, "good")
    damaged = write_fixture_experiment(tmp_path, "damaged")
    for result in damaged.glob("*/result.json"):
        records = [json.loads(line) for line in result.read_text().splitlines()]
        result.write_text("".join(json.dumps({**r, "config_id": None}) + "\n" for r in records))
    rows = [
        _job("SUCCEEDED", "nosuch://bucket/x", start_time_ms=4),  # pyarrow: ArrowInvalid
        _job("SUCCEEDED", str(damaged), start_time_ms=3),
        _job("RUNNING", str(tmp_path / "not-yet"), start_time_ms=2),
        _job("SUCCEEDED", str(good), start_time_ms=1),
    ]
    _use(monkeypatch, StandInJobs(["RUNNING"], rows))
    assert main(["jobs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert lines[1].endswith("— (cannot read it here: ArrowInvalid)")
    assert lines[2].endswith("— (must be text)")  # the damaged report's config_id
    assert lines[3].endswith(" —")
    assert lines[4].endswith("val_acc 91.00% (taso_alpha=10_beta=0.5)")


def test_a_stopped_jobs_best_is_what_it_left_after_its_resume_repeated_epochs(
    tmp_path: Path,
) -> None:
    """A resume repeats the epochs after each trial's last checkpoint; the stopped job's row still
    shows the reports it wrote itself (those stamped up to its end), not the checkpoint's epoch."""
    experiment = write_fixture_experiment(tmp_path, "stopped")
    results = sorted(experiment.glob("*/result.json"))
    for result in results:
        records = [json.loads(line) for line in result.read_text().splitlines()]
        result.write_text("".join(json.dumps({**r, "timestamp": 1_000}) + "\n" for r in records))
    left_by_stop = best_result(str(experiment))
    # the resume continues each trial from the epoch before its last and reports that epoch again
    for result in results:
        records = [json.loads(line) for line in result.read_text().splitlines()]
        if len(records) < 2:
            continue
        again = {**records[-1], "timestamp": 2_000, "val_acc": records[-2]["val_acc"] - 0.01}
        result.write_text(result.read_text() + json.dumps(again) + "\n")
    assert left_by_stop is not None
    assert best_result(str(experiment), until_ms=1_500_000) == left_by_stop
    assert best_result(str(experiment)) != left_by_stop
    # a line the resume wrote later is not read for the stopped job's row, even a damaged one
    damaged = {**json.loads(results[0].read_text().splitlines()[0]), "timestamp": 2_000}
    results[0].write_text(
        results[0].read_text() + json.dumps({**damaged, "config_id": None}) + "\n"
    )
    assert best_result(str(experiment), until_ms=1_500_000) == left_by_stop
