"""Launching and inspecting sweeps where users look, on a real local Ray head with token auth (no mocks).

One head (``ray_head.py``) serves the module. A sweep is submitted with ``taso-tune submit`` while
Debian's Prometheus scrapes the cluster through Ray's service-discovery file; then the tests read it
back the ways a person would: the Jobs API (metadata), the State API and the dashboard's HTTP API
(trial actors named after their trials), the job's logs (progress lines, log prefixes, the
TensorBoard line), ``taso-tune jobs``, every Grafana panel's PromQL through Prometheus's HTTP API,
and the TensorBoard event files through TensorBoard's own reader. A second sweep is stopped with
``taso-tune stop`` and resumed with ``taso-tune submit --resume``; ``taso-tune dashboard`` serves
the dashboard to a browser that holds no token.
"""

from __future__ import annotations

import http.cookiejar
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml
from ray_head import Cluster, Prometheus, prometheus_for, ray_head
from sweep_helpers import hparam_values, result_records, tensorboard_hparams, trial_dirs
from test_own_model import USER_MODULE

from taso_tune.cli import main
from taso_tune.results.experiment import load_experiment
from taso_tune.tuning.observe.live_metrics import GAUGES as LIVE_GAUGES

REPO = Path(__file__).resolve().parents[1]
#: Ray exports user metrics under its ``ray`` namespace: a Gauge named x is scraped as ray_x.
GAUGES = tuple(f"ray_{name}" for name in LIVE_GAUGES)
GRAFANA = REPO / "dashboards" / "grafana" / "taso_tune_trials.json"
TINY_SPACE = {
    "name": "dashboard",
    "description": "two trials of two epochs, for the dashboard tests",
    "train": {"model": "lenet5", "dataset": "digits", "epochs": 2, "batch_size": 64},
    "metric": "val_acc",
    "seeds": 1,
    "resources": {"cpus": 1},
    "scheduler": "none",
    "search": "grid",
    "max_concurrent": 2,
    # trials this short would reuse actors by default: these tests inspect one actor per trial
    "reuse_actors": False,
    "blocks": [{"optimizer": "taso", "lr": {"grid": [0.05, 0.1]}}],
}
TRIAL_NAMES = {"taso_lr=0.05", "taso_lr=0.1"}  # the config ids: optimizer and varied settings


def run_cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    return code, out.getvalue()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with ray_head() as head:
        yield head


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster) -> Iterator[Prometheus | None]:
    """Prometheus scraping the head, or ``None`` (and its test skips) when it is not installed."""
    if shutil.which("prometheus") is None:
        yield None
        return
    with prometheus_for(cluster) as server:
        yield server


def _working_dir(cluster: Cluster, name: str, space: dict) -> Path:
    """A user's project folder: the package and a space file (what `submit` uploads)."""
    work = Path(cluster.folder, name)
    shutil.copytree(
        REPO / "taso_tune", work / "taso_tune", ignore=shutil.ignore_patterns("__pycache__")
    )
    (work / "tiny.yaml").write_text(yaml.safe_dump(space))
    return work


def _wait(
    cluster: Cluster,
    job_id: str,
    timeout: float = 240,
    until=("SUCCEEDED", "FAILED", "STOPPED"),
    each=None,
) -> str:
    deadline = time.monotonic() + timeout
    status = "PENDING"
    while time.monotonic() < deadline:
        status = cluster.api(f"/api/jobs/{job_id}")["status"]
        if each is not None:
            each()
        if status in until:
            return status
        time.sleep(1)
    return status


def _metric_names(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line.startswith("ray_taso_tune_")
    }


@dataclass
class Sweep:
    job_id: str
    submit_output: str
    experiment: Path
    work: Path
    logs: str
    status: str
    gauges_seen: set[str]


def _job_id(submit_output: str) -> str:
    return re.search(r"submitted job (\S+)", submit_output).group(1)


@pytest.fixture(scope="module")
def sweep(cluster: Cluster, prometheus: Prometheus | None) -> Sweep:
    """The tiny sweep, submitted through the CLI with --token-file and run to its end."""
    work = _working_dir(cluster, "work", TINY_SPACE)
    storage = Path(cluster.folder, "runs")
    code, out = run_cli(
        "submit",
        str(work / "tiny.yaml"),
        "--address",
        cluster.url,
        "--token-file",
        cluster.token_file,
        "--working-dir",
        str(work),
        "--storage",
        str(storage),
        "--name",
        "inspect",
    )
    assert code == 0, out
    job_id = _job_id(out)
    seen: set[str] = set()
    status = _wait(cluster, job_id, each=lambda: seen.update(_metric_names(cluster.metrics_port)))
    logs = cluster.api(f"/api/jobs/{job_id}/logs")["logs"]
    return Sweep(job_id, out, storage / "inspect", work, logs, status, seen)


@pytest.mark.ray
@pytest.mark.slow
def test_dashboard_needs_the_token_and_listens_on_loopback_only(cluster: Cluster) -> None:
    status, text = cluster.request("/api/jobs/")
    assert status == 401 and "Missing authentication token" in text
    assert cluster.request("/api/jobs/", headers={"Authorization": "Bearer wrong"})[0] == 403
    assert (
        cluster.request("/api/v0/actors", headers={"Authorization": f"Bearer {cluster.token}"})[0]
        == 200
    )
    # the header proxies and KubeRay use
    assert (
        cluster.request("/api/jobs/", headers={"X-Ray-Authorization": f"Bearer {cluster.token}"})[0]
        == 200
    )
    listening = {
        c.laddr.ip
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == cluster.dashboard_port
    }
    assert listening == {"127.0.0.1"}


@pytest.mark.ray
@pytest.mark.slow
def test_a_missing_or_wrong_token_is_one_line_and_exit_2(
    cluster: Cluster, tmp_path: Path, monkeypatch, capsys
) -> None:
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token
    assert main(["jobs", "--address", cluster.url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"the cluster at {cluster.url} needs a token and none was found" in err
    assert "RAY_AUTH_TOKEN" in err and "ray get-auth-token" in err
    wrong = tmp_path / "wrong_token"
    wrong.write_text("not-the-token\n")
    assert main(["jobs", "--address", cluster.url, "--token-file", str(wrong)]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and f"token: the token was refused by {cluster.url}" in err
        and str(wrong) in err
    )
    assert "not-the-token" not in err
    monkeypatch.setenv("RAY_AUTH_TOKEN", "also-wrong")
    assert main(["logs", "raysubmit_none", "--address", cluster.url]) == 2
    err = capsys.readouterr().err
    assert "'RAY_AUTH_TOKEN'" in err and "also-wrong" not in err
    # `taso-tune dashboard` says the same, before it listens anywhere
    assert main(["dashboard", "--address", cluster.url, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'RAY_AUTH_TOKEN'" in err and "also-wrong" not in err
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    assert main(["dashboard", "--address", cluster.url, "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"the cluster at {cluster.url} needs a token and none was found" in err


def _get(url: str, opener: urllib.request.OpenerDirector | None = None) -> tuple[int, str, str]:
    """(status, content type, text) of a GET that carries no token (``opener``: a browser's, with
    its cookies)."""
    with (opener or urllib.request.build_opener()).open(url, timeout=30) as response:
        return response.status, response.headers["Content-Type"], response.read().decode()


def _browser() -> urllib.request.OpenerDirector:
    """A browser that keeps cookies and follows redirects."""
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )


@pytest.mark.ray
@pytest.mark.slow
def test_the_dashboard_proxy_serves_it_without_the_token_in_the_browser(
    cluster: Cluster,
) -> None:
    from taso_tune.cluster.dashboard import open_dashboard

    assert cluster.request("/api/version")[0] == 401  # the dashboard itself asks for the token
    access = open_dashboard(cluster.url, cluster.token_file, port=0)
    assert access.proxy is not None and access.url.startswith("http://127.0.0.1:")
    base = f"http://127.0.0.1:{access.proxy.server_address[1]}/"
    serving = threading.Thread(target=access.proxy.serve_forever)
    serving.start()
    try:
        # without the printed URL's key: refused, though the port is the proxy's
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(f"{base}api/jobs/")
        assert refused.value.code == 403
        browser = _browser()
        status, kind, page = _get(access.url, browser)  # the page itself, the key now a cookie
        assert status == 200 and kind.startswith("text/html") and "<title>" in page.lower()
        status, _, text = _get(f"{base}api/version", browser)
        assert (
            status == 200
            and json.loads(text)["ray_version"] == cluster.api("/api/version")["ray_version"]
        )
        summary = json.loads(_get(f"{base}nodes?view=summary", browser)[2])
        assert summary["result"] is True and isinstance(summary["data"]["summary"], list)
        # a token the browser sent is replaced by the proxy's
        request = urllib.request.Request(
            f"{base}api/jobs/", headers={"Authorization": "Bearer stale"}
        )
        with browser.open(request, timeout=30) as response:
            assert response.status == 200 and isinstance(json.loads(response.read()), list)
    finally:
        access.proxy.shutdown()
        access.proxy.server_close()
        serving.join(timeout=30)
    assert not serving.is_alive()


@pytest.mark.ray
@pytest.mark.slow
def test_taso_tune_dashboard_prints_the_url_and_stops_on_ctrl_c(cluster: Cluster) -> None:
    command = [sys.executable, "-m", "taso_tune.cli", "dashboard", "--address", cluster.url]
    command += ["--token-file", cluster.token_file, "--port", "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proxy = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        first = proxy.stdout.readline()
        match = re.fullmatch(
            rf"dashboard: (http://127\.0\.0\.1:\d+/)\?taso_key=[\w-]{{43}} \(forwards to "
            rf"{re.escape(cluster.url)} with the token\)\n",
            first,
        )
        assert match, first
        assert proxy.stdout.readline() == (
            "anyone with this URL uses the dashboard as the token's holder\n"
        )
        assert proxy.stdout.readline() == "press Ctrl-C to stop\n"
        browser = _browser()
        _get(first.split()[1], browser)
        status, _, text = _get(f"{match.group(1)}api/version", browser)
        assert status == 200 and "ray_version" in json.loads(text)
        assert cluster.token not in first
        proxy.send_signal(signal.SIGINT)
        assert proxy.wait(timeout=30) == 0
        assert proxy.stdout.read() == "stopped\n"
    finally:
        if proxy.poll() is None:
            proxy.kill()
            proxy.wait(timeout=10)


@pytest.mark.ray
@pytest.mark.slow
def test_a_submitted_sweep_is_a_job_whose_trial_actors_carry_the_trial_names(
    cluster: Cluster, sweep: Sweep
) -> None:
    assert sweep.status == "SUCCEEDED", sweep.logs[-3000:]
    experiment = str(sweep.experiment)
    for line in (
        f"experiment  {experiment}",
        f"dashboard   {cluster.url}/#/jobs/{sweep.job_id}",
        f"follow      taso-tune logs {sweep.job_id} --follow --address {cluster.url}",
        f"stop        taso-tune stop {sweep.job_id} --address {cluster.url}",
    ):
        assert line in sweep.submit_output
    assert cluster.token not in sweep.submit_output
    job = cluster.api(f"/api/jobs/{sweep.job_id}")
    assert job["metadata"] == {
        "taso_tune": "sweep",
        "space_file": "tiny.yaml",
        "experiment": experiment,
    }
    assert job["entrypoint"].startswith(
        "python -m taso_tune.cli sweep tiny.yaml --name inspect --storage "
    )
    # the dashboard's HTTP API, with the token
    actors = cluster.api("/api/v0/actors?limit=1000&detail=true")["data"]["result"]["result"]
    trials = [a for a in actors if a["class_name"] == "TrialActor"]
    assert sorted(a["repr_name"] for a in trials) == sorted(TRIAL_NAMES)  # one actor per trial
    assert "JobSupervisor" in {a["class_name"] for a in actors}
    # Ray's State API, given the token as the CLI gives it
    from ray.util.state import StateApiClient
    from ray.util.state.common import ListApiOptions, StateResource

    client = StateApiClient(
        address=cluster.url, headers={"Authorization": f"Bearer {cluster.token}"}
    )
    options = ListApiOptions(filters=[("class_name", "=", "TrialActor")], detail=True, limit=100)
    listed = client.list(StateResource.ACTORS, options=options, raise_on_missing_output=True)
    assert {a.repr_name for a in listed} == TRIAL_NAMES and {a.state for a in listed} == {"DEAD"}
    # each trial's output carries its name as the log prefix
    for name in TRIAL_NAMES:
        assert re.search(
            rf"\({re.escape(name)} pid=\d+\).* seeds \[0\]: 0 of 2 epochs done, training on cpu",
            sweep.logs,
        )
    assert set(GAUGES) <= sweep.gauges_seen, sorted(sweep.gauges_seen)


@pytest.mark.ray
@pytest.mark.slow
def test_the_logs_have_progress_lines_and_jobs_lists_the_sweep(
    cluster: Cluster, sweep: Sweep, monkeypatch
) -> None:
    for name in TRIAL_NAMES:
        assert re.search(
            rf"trial {re.escape(name)} complete, 2/2 epochs: val_acc \d\.\d{{4}} over 1 seed\n",
            sweep.logs,
        )
    assert re.search(r"progress: 2/2 trials done, 4/4 trial-epochs, \d+s elapsed, done", sweep.logs)
    assert f"tensorboard: tensorboard --logdir {sweep.experiment}" in sweep.logs
    assert "best configuration per optimizer" in sweep.logs
    monkeypatch.setenv("RAY_AUTH_TOKEN", cluster.token)
    code, listing = run_cli("jobs", "--address", cluster.url)
    assert code == 0
    row = next(line for line in listing.splitlines() if line.startswith(sweep.job_id))
    best = max(
        (result_records(d)[-1]["val_acc"], result_records(d)[-1]["config_id"])
        for d in trial_dirs(sweep.experiment)
    )
    assert row.split()[1:4] == ["SUCCEEDED", str(sweep.experiment), "val_acc"]
    assert row.endswith(f"val_acc {best[0]:.2%} ({best[1]})")
    code, logs = run_cli("logs", sweep.job_id, "--address", cluster.url)
    assert code == 0 and "progress: 2/2 trials done" in logs
    code, followed = run_cli("logs", sweep.job_id, "--follow", "--address", cluster.url)
    assert code == 0 and "best configuration per optimizer" in followed


@pytest.mark.ray
@pytest.mark.slow
def test_reused_actors_are_named_after_the_experiment_and_log_under_each_trial(
    cluster: Cluster, sweep: Sweep
) -> None:
    """``--reuse-actors true``: one actor runs both trials one after another; the Actors view names
    it after the experiment (a trial's name would be wrong for the next trial), and each trial's log
    lines carry that trial's name."""
    space = {**TINY_SPACE, "max_concurrent": 1}
    work = _working_dir(cluster, "work-reused", space)
    code, out = run_cli(
        "submit",
        str(work / "tiny.yaml"),
        "--address",
        cluster.url,
        "--token-file",
        cluster.token_file,
        "--working-dir",
        str(work),
        "--storage",
        str(Path(cluster.folder, "runs")),
        "--name",
        "reused",
        "--reuse-actors",
        "true",
    )
    assert code == 0, out
    job_id = _job_id(out)
    assert _wait(cluster, job_id) == "SUCCEEDED"
    logs = cluster.api(f"/api/jobs/{job_id}/logs")["logs"]
    assert "--reuse-actors True" in cluster.api(f"/api/jobs/{job_id}")["entrypoint"]
    actors = cluster.api("/api/v0/actors?limit=1000&detail=true")["data"]["result"]["result"]
    job_actors = [
        a
        for a in actors
        if a["class_name"] == "TrialActor"
        and a["job_id"] != ""
        and a["repr_name"] == "reused (trials one after another)"
    ]
    assert len(job_actors) == 1, [a["repr_name"] for a in actors if a["class_name"] == "TrialActor"]
    pids = set()
    for name in TRIAL_NAMES:
        found = re.search(
            rf"\({re.escape(name)} pid=(\d+)\).* seeds \[0\]: 0 of 2 epochs done, training on cpu",
            logs,
        )
        assert found, logs[-3000:]
        pids.add(found.group(1))
    assert len(pids) == 1  # the same process ran both trials
    for records in map(result_records, trial_dirs(Path(cluster.folder, "runs", "reused"))):
        assert [r["epoch"] for r in records] == [1, 2]


@pytest.mark.ray
@pytest.mark.slow
def test_prometheus_answers_every_grafana_panel(
    sweep: Sweep, prometheus: Prometheus | None
) -> None:
    if prometheus is None:
        pytest.skip(
            "Debian's prometheus is not installed (`make test` installs it when root: apt-get install prometheus)"
        )
    assert sweep.status == "SUCCEEDED"
    dashboard = json.loads(GRAFANA.read_text())
    exported = set(GAUGES)
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            assert set(re.findall(r"\bray_[a-z_]+", expr)) <= exported, (
                expr
            )  # only metrics we export
            query = (
                expr.replace("$experiment", "inspect")
                .replace("$optimizer", ".*")
                .replace("$hold", "5m")
            )
            series = _poll(prometheus, query)
            assert {s["metric"]["trial"] for s in series} == TRIAL_NAMES, (panel["title"], series)
            assert {s["metric"]["experiment"] for s in series} == {"inspect"}
    epochs = {
        s["metric"]["trial"]: float(s["value"][1])
        for s in _poll(prometheus, 'last_over_time(ray_taso_tune_epoch{experiment="inspect"}[5m])')
    }
    assert epochs == {name: 2.0 for name in TRIAL_NAMES}
    # the template variables' label_values(...) queries
    with urllib.request.urlopen(
        f"{prometheus.url}/api/v1/label/experiment/values?match[]=ray_taso_tune_epoch"
    ) as r:
        assert "inspect" in json.loads(r.read())["data"]


def _poll(prometheus: Prometheus, query: str, timeout: float = 30) -> list[dict]:
    """The query's series once Prometheus has them (its last scrape may trail the job by a second)."""
    deadline = time.monotonic() + timeout
    while True:
        series = prometheus.query(query)
        if series or time.monotonic() > deadline:
            return series
        time.sleep(1)


@pytest.mark.ray
@pytest.mark.slow
def test_tensorboard_reads_hparams_and_epoch_scalars(sweep: Sweep) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert sweep.status == "SUCCEEDED"
    folders = trial_dirs(sweep.experiment)
    assert len(folders) == 2
    for folder in folders:
        records = result_records(folder)
        events = EventAccumulator(str(folder))
        events.Reload()
        for metric in ("val_acc", "test_acc", "train_loss", "lr", "epoch"):
            scalars = events.Scalars(f"ray/tune/{metric}")
            assert [s.step for s in scalars] == [1, 2]
            assert [s.value for s in scalars] == pytest.approx(
                [r[metric] for r in records], rel=1e-6
            )
        assert "ray/tune/per_seed/0/val_acc" in events.Tags()["scalars"]
        assert not {"ray/tune/config_id", "ray/tune/batch_size"} & set(
            events.Tags()["scalars"]
        )  # labels are hparams
        assert "_hparams_/experiment" not in events.PluginTagToContent("hparams")  # the driver's
    experiment, groups = tensorboard_hparams(sweep.experiment)
    rows = {group.name: hparam_values(group) for group in groups}
    assert set(rows) == TRIAL_NAMES  # TensorBoard's Trial ID: the trial's name
    for name, row in rows.items():
        lr = float(name.split("=")[1])
        assert row == {
            "trial": name,
            "optimizer": "taso",
            "seeds": "0",
            "n_seeds": 1.0,
            "model": "lenet5",
            "dataset": "digits",
            "batch_size": 64.0,
            "lr": lr,
            "alpha": 25.0,
            "beta": 0.7,
            "momentum": 0.9,
            "nesterov": False,
            "weight_decay": 0.0001,
        }
    assert {"ray/tune/val_acc", "ray/tune/test_acc", "ray/tune/epoch"} <= {
        m.name.tag for m in experiment.metric_infos
    }


STOP_SPACE = {**TINY_SPACE, "train": {**TINY_SPACE["train"], "epochs": 20}, "checkpoint_every": 1}


def _wait_for_epochs(experiment: Path, alive, timeout: float = 180) -> None:
    """Until both trials have reported two epochs (``alive()`` says the sweep still runs)."""
    deadline = time.monotonic() + timeout
    while not (
        len(_trials(experiment)) == 2
        and all(len(result_records(d)) >= 2 for d in _trials(experiment))
    ):
        assert time.monotonic() < deadline and alive()
        time.sleep(0.5)


@pytest.mark.ray
@pytest.mark.slow
def test_stop_ends_the_job_cleanly_and_resume_finishes_it(
    cluster: Cluster, sweep: Sweep, monkeypatch
) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", cluster.token)
    work = _working_dir(cluster, "work-stop", STOP_SPACE)
    storage = Path(cluster.folder, "runs")
    code, out = run_cli(
        "submit",
        str(work / "tiny.yaml"),
        "--address",
        cluster.url,
        "--working-dir",
        str(work),
        "--storage",
        str(storage),
        "--name",
        "stopped",
    )
    assert code == 0, out
    job_id, experiment = _job_id(out), storage / "stopped"
    _wait_for_epochs(
        experiment, lambda: cluster.api(f"/api/jobs/{job_id}")["status"] in ("PENDING", "RUNNING")
    )
    code, stopped = run_cli("stop", job_id, "--address", cluster.url)
    assert code == 0 and f"job {job_id}: STOPPED" in stopped, stopped
    assert "still stopping" not in stopped
    assert (
        f"continue it with: taso-tune submit --resume {experiment} --address {cluster.url}"
        in stopped
    )
    # the driver ended on SIGTERM within Ray's grace period, not by the SIGKILL that follows it
    supervisor = Path(
        cluster.temp_dir, "session_latest", "logs", "jobs", f"supervisor-{job_id}.log"
    ).read_text()
    assert "has been terminated gracefully with SIGTERM" in supervisor, supervisor[-2000:]
    assert all(result_records(d)[-1]["epoch"] < 20 for d in _trials(experiment))
    # the job was given its grace period by `submit`, on the job (the head sets none)
    assert cluster.api(f"/api/jobs/{job_id}")["runtime_env"]["env_vars"] == {
        "RAY_JOB_STOP_WAIT_TIME_S": "30"
    }
    left_by_stop = _best_last_report(experiment)
    code, out = run_cli(
        "submit", "--resume", str(experiment), "--address", cluster.url, "--working-dir", str(work)
    )
    assert code == 0, out
    resumed = _job_id(out)
    assert _wait(cluster, resumed) == "SUCCEEDED", cluster.api(f"/api/jobs/{resumed}/logs")["logs"][
        -3000:
    ]
    logs = cluster.api(f"/api/jobs/{resumed}/logs")["logs"]
    assert "best configuration per optimizer" in logs
    assert re.search(r"progress: 2/2 trials done, 40/40 trial-epochs, \d+s elapsed, done", logs)
    assert [result_records(d)[-1]["epoch"] for d in _trials(experiment)] == [20, 20]
    # the resumed trials continued from their checkpoints, not from the start
    started = [int(n) for n in re.findall(r"seeds \[0\]: (\d+) of 20 epochs done", logs)]
    assert len(started) == 2 and all(n >= 2 for n in started), started
    # the resume's metadata names the space it runs: the one the sweep wrote beside its results
    assert cluster.api(f"/api/jobs/{resumed}")["metadata"] == {
        "taso_tune": "resume",
        "space_file": f"{experiment}/taso_tune_space.yaml",
        "experiment": str(experiment),
    }
    # each row of `taso-tune jobs` shows its own job's best: the stopped one what it left
    code, listing = run_cli("jobs", "--address", cluster.url)
    assert code == 0, listing
    rows = {line.split()[0]: line for line in listing.splitlines()[1:]}
    finished = _best_last_report(experiment)
    # the two bests may be equal (a trial's validation accuracy can reach its final value before the
    # stop); rows that differ for each job's own reports are tested apart, with reports written for
    # it, in test_jobs_commands.py (test_a_stopped_jobs_best_is_what_it_left_after_its_resume_...)
    assert rows[job_id].endswith(f"val_acc {left_by_stop[0]:.2%} ({left_by_stop[1]})"), listing
    assert rows[resumed].endswith(f"val_acc {finished[0]:.2%} ({finished[1]})"), listing


def _best_last_report(experiment: Path) -> tuple[float, str]:
    """(val_acc, config id) of the trial whose last report is best, as the folder stands now."""
    return max(
        (result_records(d)[-1]["val_acc"], result_records(d)[-1]["config_id"])
        for d in _trials(experiment)
    )


@pytest.mark.ray
@pytest.mark.slow
def test_sigterm_to_the_driver_exits_143_with_the_sweep_resumable(
    cluster: Cluster, sweep: Sweep, tmp_path: Path
) -> None:
    """What `ray job stop` does to a sweep's driver (SIGTERM to its process group), done directly so
    the driver's exit status can be read (Ray does not record it for a stopped job)."""
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(STOP_SPACE))
    experiment = tmp_path / "runs" / "sigterm"
    gcs = Path(cluster.temp_dir, "ray_current_cluster").read_text().strip()
    env = {
        **os.environ,
        "RAY_ADDRESS": gcs,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": cluster.token,
        "PYTHONPATH": str(REPO),
    }
    command = [
        sys.executable,
        "-m",
        "taso_tune.cli",
        "sweep",
        str(space),
        "--storage",
        str(tmp_path / "runs"),
        "--name",
        "sigterm",
    ]
    with open(tmp_path / "driver.log", "w") as log:
        driver = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_for_epochs(experiment, lambda: driver.poll() is None)
        os.killpg(driver.pid, signal.SIGTERM)
        assert driver.wait(timeout=30) == 143, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    from ray import tune

    assert tune.Tuner.can_restore(str(experiment))
    assert all(result_records(d)[-1]["epoch"] < 20 for d in _trials(experiment))


def _trials(experiment: Path) -> list[Path]:
    return trial_dirs(experiment) if experiment.is_dir() else []


def test_grafana_dashboard_has_a_panel_per_gauge() -> None:
    dashboard = json.loads(GRAFANA.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"datasource", "experiment", "optimizer"} <= set(variables)
    assert (
        variables["datasource"]["type"] == "datasource"
        and variables["datasource"]["query"] == "prometheus"
    )
    exprs = {}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert (
                'experiment=~"$experiment"' in target["expr"]
                and 'optimizer=~"$optimizer"' in target["expr"]
            )
            assert target["legendFormat"] == "{{trial}}"
            exprs[target["expr"].split("ray_")[1].split("{")[0]] = panel
    assert sorted(exprs) == sorted(LIVE_GAUGES)  # one panel per live gauge, by its exported name
    scale = exprs["taso_tune_lr"]["fieldConfig"]["defaults"]["custom"]["scaleDistribution"]
    assert scale == {"type": "log", "log": 10}


@pytest.mark.ray
@pytest.mark.slow
def test_a_submitted_sweep_ships_the_users_package_from_outside_the_working_dir(
    cluster: Cluster, monkeypatch
) -> None:
    """The user's package lives outside the uploaded working directory and on no path of the head:
    `submit` ships it as py_modules, so the job's driver and its trials import it."""
    package = Path(cluster.folder, "elsewhere", "mine")
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(package.parent))
    train = {**TINY_SPACE["train"], "model": "mine.nets:mlp", "dataset": "mine.nets:tensors"}
    work = _working_dir(cluster, "work-own", {**TINY_SPACE, "train": {**train, "batch_size": 8}})
    storage = Path(cluster.folder, "runs")
    code, out = run_cli(
        "submit",
        str(work / "tiny.yaml"),
        "--address",
        cluster.url,
        "--token-file",
        cluster.token_file,
        "--working-dir",
        str(work),
        "--storage",
        str(storage),
        "--name",
        "own",
    )
    assert code == 0, out
    job_id = _job_id(out)
    status = _wait(cluster, job_id)
    logs = cluster.api(f"/api/jobs/{job_id}/logs")["logs"]
    assert status == "SUCCEEDED", logs[-3000:]
    assert len(cluster.api(f"/api/jobs/{job_id}")["runtime_env"]["py_modules"]) == 1
    trials = load_experiment(str(storage / "own")).trials
    assert len(trials) == 2 and (trials["status"] == "complete").all()


def test_a_stop_wait_under_a_second_is_refused_before_anything_is_sent(
    tmp_path: Path, capsys
) -> None:
    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE))
    # no dashboard answers at this address: an error about it would mean a request was made
    argv = ["submit", str(space), "--working-dir", str(tmp_path), "--address", "http://127.0.0.1:9"]
    assert main([*argv, "--stop-wait", "0"]) == 2
    err = capsys.readouterr().err
    assert err == "taso-tune submit: error: --stop-wait: must be 1 second or more (got 0)\n"
