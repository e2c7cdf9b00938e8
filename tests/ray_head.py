"""A real local Ray head with token authentication for the dashboard tests, and a Prometheus for it.

The head is ``ray start --head --block`` in its own temporary folders, its dashboard bound to
127.0.0.1, token authentication on (``RAY_AUTH_MODE=token``, token from ``ray get-auth-token
--generate`` under a temporary HOME), every port chosen free. It is stopped by terminating that
process and then any of its descendants still alive, by process id: ``ray stop`` would stop every
Ray cluster on the machine. Prometheus is Debian's, with the config ``make metrics`` writes.
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
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from taso_tune.cluster.prometheus import prometheus_command, write_config

RAY = str(Path(sys.executable).with_name("ray"))


def free_ports(count: int) -> list[int]:
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

    @property
    def temp_dir(self) -> str:
        return f"{self.folder}/ray"

    @property
    def token_file(self) -> str:
        return f"{self.folder}/home/.ray/auth_token"

    def request(
        self, path: str, *, headers: dict[str, str] | None = None, body: dict | None = None
    ) -> tuple[int, str]:
        """(status, text) of a dashboard request; no token unless ``headers`` carries one."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=15) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def api(self, path: str, body: dict | None = None):
        status, text = self.request(
            path, headers={"Authorization": f"Bearer {self.token}"}, body=body
        )
        assert status == 200, f"{path}: {status} {text[:500]}"
        return json.loads(text)


def _stop(process: subprocess.Popen, timeout: float = 45) -> None:
    """Stop ``process`` and every process it started, by id."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    process.terminate()  # ray start --block shuts its processes down on SIGTERM
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    _, alive = psutil.wait_procs(descendants, timeout=15)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=10)


@contextmanager
def ray_head() -> Iterator[Cluster]:
    # short folder names: Ray's Unix sockets live under the temp dir and their paths are length-limited
    folder = tempfile.mkdtemp(prefix="taso-dash-")
    # HOME: the token file (~/.ray/auth_token) stays in this test's folder; report interval: gauges
    # reach the metrics endpoint within a second, not ten; PATH: `python` in a job entry point is
    # this environment's (as for a head started from an activated virtualenv); no
    # RAY_JOB_STOP_WAIT_TIME_S: `taso-tune submit` sets it on each job
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "HOME": f"{folder}/home",
        "RAY_AUTH_MODE": "token",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_metrics_report_interval_ms": "1000",
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
    }
    for name in (
        "RAY_ADDRESS",
        "RAY_AUTH_TOKEN",
        "RAY_AUTH_TOKEN_PATH",
        "PYTHONPATH",
        "RAY_JOB_STOP_WAIT_TIME_S",
    ):
        env.pop(name, None)
    token = subprocess.run(
        [RAY, "get-auth-token", "--generate"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    # every port chosen free: other Ray clusters on this machine may hold the defaults (52365, 10001)
    dashboard_port, metrics_port, agent_port, client_port = free_ports(4)
    with open(f"{folder}/head.log", "w") as log:
        head = subprocess.Popen(
            [
                RAY,
                "start",
                "--head",
                "--block",
                "--port=0",
                "--num-cpus=2",
                f"--temp-dir={folder}/ray",
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={dashboard_port}",
                f"--metrics-export-port={metrics_port}",
                f"--dashboard-agent-listen-port={agent_port}",
                f"--ray-client-server-port={client_port}",
                "--disable-usage-stats",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        cluster = Cluster(
            f"http://127.0.0.1:{dashboard_port}", token, dashboard_port, metrics_port, folder
        )
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
            if (
                cluster.request("/api/jobs/", headers={"Authorization": f"Bearer {cluster.token}"})[
                    0
                ]
                == 200
            ):
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    pytest.fail(f"the dashboard did not come up in {timeout:.0f} s")


@dataclass
class Prometheus:
    url: str

    def query(self, expr: str) -> list[dict]:
        """The result vector of an instant query (``/api/v1/query``)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=15) as response:
            answer = json.loads(response.read().decode())
        assert answer["status"] == "success", answer
        return answer["data"]["result"]


@contextmanager
def prometheus_for(cluster: Cluster) -> Iterator[Prometheus]:
    """Debian's Prometheus scraping ``cluster`` every second through Ray's discovery file."""
    folder = f"{cluster.folder}/prometheus"
    (port,) = free_ports(1)
    config = write_config(folder, cluster.temp_dir, scrape_interval="1s")
    with open(f"{folder}/prometheus.log", "w") as log:
        process = subprocess.Popen(
            prometheus_command(config, f"{folder}/data", port), stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, Path(folder, "prometheus.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "Prometheus did not become ready in 60 s"
            time.sleep(0.5)
        yield Prometheus(url)
    finally:
        _stop(process, timeout=20)
