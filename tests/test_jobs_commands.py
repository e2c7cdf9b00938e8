"""What `taso-tune stop` and `taso-tune jobs` print, over a stand-in for the cluster's Jobs API (the
same commands against a real Ray head are in ``test_ray_dashboard.py``): the resume command only
once the job has ended, and a listing that survives an experiment it cannot read."""

from __future__ import annotations

import http.server
import json
import shlex
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from test_results import write_fixture_experiment

from taso_tune.cli import jobs as jobs_cli
from taso_tune.cli import main
from taso_tune.cluster.jobs import (
    DEFAULT_ADDRESS,
    RAY_STOP_WAIT_S,
    STOP_MARGIN_S,
    SweepJob,
    _sweep_job,
    best_result,
    dashboard_address,
)
from taso_tune.core.errors import ConfigError

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
    """Answers ``sweep`` with each of ``statuses`` in turn (the last one from then on), for a job on
    ``experiment``; ``submit`` records what it was asked to run."""

    def __init__(
        self,
        statuses: list[str],
        listed: list[SweepJob] | None = None,
        experiment: str = EXPERIMENT,
    ) -> None:
        self.statuses = statuses
        self.listed = listed or []
        self.experiment = experiment
        self.stopped = False
        self.submitted: list[dict] = []

    def sweep(self, job_id: str) -> SweepJob:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return _job(status, self.experiment)

    def submit(self, command, **options) -> str:
        self.submitted.append({"command": list(command), **options})
        return "raysubmit_new"

    def dashboard_url(self, job_id: str) -> str:
        return f"http://h:8265/#/jobs/{job_id}"

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


def _finished(experiment: Path) -> Path:
    """The fixture experiment with every planned trial finished (its Tune state says so)."""
    state = next(experiment.glob("experiment_state-*.json"))
    trials = json.loads(state.read_text())["trial_data"]
    done = [
        [json.dumps({**json.loads(trial), "status": "TERMINATED"}), extra]
        for trial, extra in trials
    ]
    done.append([json.dumps({"trial_id": "extra", "status": "TERMINATED"}), json.dumps({})])
    state.write_text(json.dumps({"trial_data": done}))
    return experiment


def test_stop_of_a_job_whose_trials_had_all_finished_offers_no_resume(
    tmp_path: Path, monkeypatch, clock: Clock, capsys
) -> None:
    """A job stopped as its last trial ended: a resume would find nothing to do."""
    experiment = _finished(write_fixture_experiment(tmp_path, "done"))
    _use(monkeypatch, StandInJobs(["RUNNING", "STOPPED"], experiment=str(experiment)))
    assert main(["stop", "raysubmit_x"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "job raysubmit_x: STOPPED",
        "its experiment had finished every trial: nothing to resume (read it with: taso-tune "
        f"report {shlex.quote(str(experiment))})",
    ]
    # one trial short of the plan (the fixture as written): the resume command, as before
    unfinished = write_fixture_experiment(tmp_path, "not-done")
    _use(monkeypatch, StandInJobs(["RUNNING", "STOPPED"], experiment=str(unfinished)))
    assert main(["stop", "raysubmit_x"]) == 0
    assert "continue it with: taso-tune submit --resume" in capsys.readouterr().out


def test_submit_resume_sends_an_absolute_experiment_path(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """The job runs in the uploaded working dir, where a relative path names nothing."""
    monkeypatch.chdir(tmp_path)
    jobs = _use(monkeypatch, StandInJobs(["RUNNING"]))
    assert main(["submit", "--resume", "runs/quick/"]) == 0
    absolute = str(tmp_path / "runs" / "quick")
    assert jobs.submitted[0]["command"] == ["resume", absolute]
    assert jobs.submitted[0]["experiment"] == absolute
    assert jobs.submitted[0]["space_file"] == f"{absolute}/taso_tune_space.yaml"
    out = capsys.readouterr().out
    assert f"  experiment  {absolute}" in out
    assert f"  resume      taso-tune submit --resume {absolute}" in out


def test_submit_refuses_an_experiment_a_running_job_holds(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """A second job on the same experiment would fail on its lock once it started on the cluster:
    it is refused here, before anything is uploaded."""
    experiment = str(tmp_path / "runs" / "quick")
    running = _job("RUNNING", experiment + "/")
    jobs = _use(monkeypatch, StandInJobs(["RUNNING"], [running]))
    assert main(["submit", "--resume", experiment]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"taso-tune submit: error: --resume: job raysubmit_x is still running on this experiment "
        "(its folder is locked while it runs): stop it with `taso-tune stop raysubmit_x`, or wait "
        f"for it to end (got '{experiment}')"
    ]
    assert not jobs.submitted
    # once that job has ended, the same submit goes ahead
    _use(monkeypatch, StandInJobs(["STOPPED"], [_job("STOPPED", experiment)]))
    assert main(["submit", "--resume", experiment]) == 0


def test_the_address_is_the_dashboards_url(monkeypatch) -> None:
    """`ray start` prints the dashboard as HOST:PORT: that works; a Ray cluster address (which
    Ray's SDK would take for its GCS, and wait on) is refused in one line."""
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    assert dashboard_address("127.0.0.1:8265") == "http://127.0.0.1:8265"
    assert dashboard_address("https://head.example:443/") == "https://head.example:443"
    assert dashboard_address(None) == DEFAULT_ADDRESS
    for bad in ("auto", "AUTO", "ray://head:10001", "gcs://head:6379"):
        with pytest.raises(ConfigError, match="not the Ray dashboard's address") as err:
            dashboard_address(bad)
        assert (err.value.field, err.value.value) == ("--address", bad)
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "auto")
    with pytest.raises(ConfigError) as err:
        dashboard_address(None)
    assert err.value.field == "RAY_API_SERVER_ADDRESS"


class _NotRay(http.server.BaseHTTPRequestHandler):
    """A web server that is not Ray's dashboard: 404 for every page but /, which is not JSON."""

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/" else 404)
        self.end_headers()
        self.wfile.write(b"<html>not ray</html>")

    def log_message(self, *args) -> None:
        pass


def test_a_web_server_that_is_not_a_dashboard_is_one_line(monkeypatch, capsys) -> None:
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotRay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        for command in (["jobs"], ["stop", "raysubmit_x"]):
            assert main([*command, "--address", address]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and "a web server answers there but not a Ray dashboard" in err[0]
            assert f"(got 'http://{address}')" in err[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
