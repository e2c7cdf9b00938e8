"""The Ray dashboard with a sweep submitted as a Ray Job, on a real local Ray cluster (no mocks).

A head node is started with ``ray start --head --block`` in its own temporary folders, its dashboard
bound to 127.0.0.1 and token authentication on (``RAY_AUTH_MODE=token``, token from
``ray get-auth-token --generate`` under a temporary HOME). The tests check that the dashboard refuses
requests without the token, then submit a tiny sweep through the Jobs HTTP API and find the job, its
logs, the trial actors and the live gauges (``ray_taso_tune_*`` on the metrics export port).

The cluster is stopped by terminating that ``ray start --block`` process and then any of its
descendants still alive, by process id: ``ray stop`` would stop every Ray cluster on the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from taso_tune.tuning.live_metrics import GAUGES as LIVE_GAUGES

RAY = str(Path(sys.executable).with_name("ray"))
#: Ray exports user metrics under its ``ray`` namespace: a Gauge named x is scraped as ray_x.
GAUGES = tuple(f"ray_{name}" for name in LIVE_GAUGES)
GRAFANA = Path(__file__).resolve().parents[1] / "dashboards" / "grafana" / "taso_tune_trials.json"
TINY_SPACE = {
    "name": "dashboard", "description": "two trials of two epochs, for the dashboard test",
    "train": {"model": "lenet5", "dataset": "digits", "epochs": 2, "batch_size": 64},
    "metric": "val_acc", "seeds": 1, "resources": {"cpus": 1}, "scheduler": "none", "search": "grid",
    "max_concurrent": 2, "blocks": [{"optimizer": "taso", "lr": 0.05}, {"optimizer": "amsgrad", "lr": 0.001}],
}  # fmt: skip


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free right now (all held open together, then released)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass
class Cluster:
    url: str
    token: str
    dashboard_port: int
    metrics_port: int
    folder: str

    def request(self, path: str, *, headers: dict[str, str] | None = None, body: dict | None = None) -> tuple[int, str]:
        """(status, text) of a dashboard request; no token unless ``headers`` carries one."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=15) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def api(self, path: str, body: dict | None = None):
        status, text = self.request(path, headers={"Authorization": f"Bearer {self.token}"}, body=body)
        assert status == 200, f"{path}: {status} {text[:500]}"
        return json.loads(text)


def _stop(head: subprocess.Popen) -> None:
    """Stop the head started by ``ray start --block`` and every process it started, by id."""
    try:
        descendants = psutil.Process(head.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    head.terminate()  # ray start --block shuts its processes down on SIGTERM
    try:
        head.wait(timeout=45)
    except subprocess.TimeoutExpired:
        head.kill()
        head.wait(timeout=10)
    _, alive = psutil.wait_procs(descendants, timeout=15)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=10)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # short folder names: Ray's Unix sockets live under the temp dir and their paths are length-limited
    folder = tempfile.mkdtemp(prefix="taso-dash-")
    # HOME: the token file (~/.ray/auth_token) stays in this test's folder; report interval: gauges
    # reach the metrics endpoint within a second, not ten
    env = {**os.environ, "HOME": f"{folder}/home", "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_metrics_report_interval_ms": "1000"}  # fmt: skip
    env.pop("RAY_ADDRESS", None)
    token = subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True, text=True,
                           check=True, timeout=60).stdout.strip()  # fmt: skip
    # every port chosen free: other Ray clusters on this machine may hold the defaults (52365, 10001)
    dashboard_port, metrics_port, agent_port, client_port = _free_ports(4)
    with open(f"{folder}/head.log", "w") as log:
        head = subprocess.Popen(
            [RAY, "start", "--head", "--block", "--port=0", "--num-cpus=2", f"--temp-dir={folder}/ray",
             "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
             f"--metrics-export-port={metrics_port}", f"--dashboard-agent-listen-port={agent_port}",
             f"--ray-client-server-port={client_port}", "--disable-usage-stats"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        cluster = Cluster(f"http://127.0.0.1:{dashboard_port}", token, dashboard_port, metrics_port, folder)
        _wait_until_ready(cluster, head)
        yield cluster
    finally:
        _stop(head)
        import ray

        ray.shutdown()  # nothing connected in this process; kept so no driver can outlive the test
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_ready(cluster: Cluster, head: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert head.poll() is None, Path(cluster.folder, "head.log").read_text()[-3000:]
        try:
            if cluster.request("/api/jobs/", headers={"Authorization": f"Bearer {cluster.token}"})[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    pytest.fail(f"the dashboard did not come up in {timeout:.0f} s")


@pytest.mark.ray
@pytest.mark.slow
def test_dashboard_needs_the_token_and_listens_on_loopback_only(cluster: Cluster) -> None:
    status, text = cluster.request("/api/jobs/")
    assert status == 401 and "Missing authentication token" in text
    assert cluster.request("/api/jobs/", headers={"Authorization": "Bearer wrong"})[0] == 403
    assert cluster.request("/api/v0/actors", headers={"Authorization": f"Bearer {cluster.token}"})[0] == 200
    # the header proxies and KubeRay use
    assert cluster.request("/api/jobs/", headers={"X-Ray-Authorization": f"Bearer {cluster.token}"})[0] == 200
    listening = {c.laddr.ip for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == cluster.dashboard_port}  # fmt: skip
    assert listening == {"127.0.0.1"}


def _metric_names(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("ray_taso_tune_")}


def _submit(cluster: Cluster, job: dict, timeout: float = 90) -> str:
    """Submit through the Jobs API; the head answers 500 "No available agent" until its job agent
    has registered, a few seconds after the dashboard itself is up."""
    deadline = time.monotonic() + timeout
    while True:
        status, text = cluster.request("/api/jobs/", headers={"Authorization": f"Bearer {cluster.token}"}, body=job)
        if status == 200:
            return json.loads(text)["submission_id"]
        assert status == 500 and "No available agent" in text and time.monotonic() < deadline, f"{status} {text[:500]}"
        time.sleep(1)


@pytest.mark.ray
@pytest.mark.slow
def test_sweep_submitted_as_a_job_shows_in_the_dashboard(cluster: Cluster) -> None:
    space = Path(cluster.folder, "tiny.yaml")
    space.write_text(yaml.safe_dump(TINY_SPACE))
    storage = Path(cluster.folder, "runs")
    entrypoint = f"{sys.executable} -m taso_tune.cli sweep {space} --storage {storage}"
    job_id = _submit(cluster, {"entrypoint": entrypoint, "metadata": {"sweep": "dashboard"}})
    seen: set[str] = set()
    deadline = time.monotonic() + 240
    status = "PENDING"
    while time.monotonic() < deadline:
        status = cluster.api(f"/api/jobs/{job_id}")["status"]
        seen |= _metric_names(cluster.metrics_port)  # scraped while the trials run
        if status in ("SUCCEEDED", "FAILED", "STOPPED"):
            break
        time.sleep(1)
    logs = cluster.api(f"/api/jobs/{job_id}/logs")["logs"]
    assert status == "SUCCEEDED", logs[-3000:]
    jobs = {job["submission_id"]: job for job in cluster.api("/api/jobs/")}
    assert jobs[job_id]["entrypoint"] == entrypoint and jobs[job_id]["metadata"] == {"sweep": "dashboard"}
    assert "best configuration per optimizer" in logs and "seeds: 2 (complete 2) in 2 trials" in logs
    actors = cluster.api("/api/v0/actors?limit=1000&detail=true")["data"]["result"]["result"]
    # Ray names the function trainable's class either by name or by qualified name
    # ("wrap_function.<locals>.ImplicitFunc"), depending on how the class reached the worker.
    classes = [actor["class_name"].rsplit(".", 1)[-1] for actor in actors]
    assert classes.count("ImplicitFunc") >= 1, classes  # the trial actors (reused between trials)
    assert "JobSupervisor" in classes
    assert set(GAUGES) <= seen, sorted(seen)
    assert len(list(storage.glob("dashboard/*/result.json"))) == 2


def test_grafana_dashboard_has_a_panel_per_gauge() -> None:
    dashboard = json.loads(GRAFANA.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"datasource", "experiment", "optimizer"} <= set(variables)
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    exprs = {}
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert 'experiment=~"$experiment"' in target["expr"] and 'optimizer=~"$optimizer"' in target["expr"]
            assert target["legendFormat"] == "{{trial}}"
            exprs[target["expr"].split("ray_")[1].split("{")[0]] = panel
    assert sorted(exprs) == sorted(LIVE_GAUGES)  # one panel per live gauge, by its exported name
    scale = exprs["taso_tune_lr"]["fieldConfig"]["defaults"]["custom"]["scaleDistribution"]
    assert scale == {"type": "log", "log": 10}
