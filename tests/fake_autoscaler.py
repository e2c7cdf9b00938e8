"""A real Ray head with Ray's fake autoscaler: it adds worker nodes of the configured types, as local
processes with fake GPU resources, when tasks wait for them.

The cluster file is written here (``provider: type: fake_multinode``) and the head is ``RAY_FAKE_CLUSTER=1
ray start --head --block --autoscaling-config=FILE`` in its own temporary folders with token
authentication, every port chosen free, stopped by process id (with the nodes the autoscaler started,
which are its descendants): ``ray stop`` would stop every Ray cluster on the machine.
``node_types_of`` turns a shipped cluster file (``ray up`` or KubeRay) into such node types.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ray_head import RAY, _stop, free_ports


@dataclass
class FakeCluster:
    address: str
    folder: str
    env: dict[str, str]

    def launched_types(self, timeout: float = 60) -> list[str]:
        """The node types the autoscaler has added, in order (from its log). A node can be up and
        running tasks before the monitor's log line reaches the file, so this waits up to
        ``timeout`` seconds for at least one; an empty list means none was logged by then."""
        logs = Path(self.folder, "ray", "session_latest", "logs")
        deadline = time.monotonic() + timeout
        while True:
            text = "".join(p.read_text(errors="replace") for p in logs.glob("monitor*"))
            launched = [
                line.split("of type ", 1)[1].strip().rstrip(".")
                for line in text.splitlines()
                if "Adding" in line and "of type " in line
            ]
            if launched or time.monotonic() >= deadline:
                return launched
            time.sleep(0.5)

    def worker_log_text(self) -> str:
        """Everything the cluster's worker processes printed."""
        logs = Path(self.folder, "ray", "session_latest", "logs")
        return "".join(p.read_text(errors="replace") for p in logs.glob("worker-*.out"))


def node_types_of(cluster_file: Path) -> dict[str, dict[str, Any]]:
    """The worker node types of a shipped cluster file, as the autoscaler reads them: ``ray up``
    files' ``available_node_types`` (the head's type left out); for a KubeRay RayCluster, the node
    types Ray's KubeRay autoscaler derives from its worker groups."""
    documents = [d for d in yaml.safe_load_all(cluster_file.read_text()) if d]
    cluster = next((d for d in documents if d.get("kind") == "RayCluster"), None)
    if cluster is not None:
        from ray.autoscaler._private.kuberay.autoscaling_config import (
            _derive_autoscaling_config_from_ray_cr,
        )

        # the API server fills in the namespace of a resource applied without one
        cluster["metadata"].setdefault("namespace", "default")
        config = _derive_autoscaling_config_from_ray_cr(cluster)
    else:
        config = documents[0]
    head = config["head_node_type"]
    return {
        name: {
            "resources": {
                k: v for k, v in (spec.get("resources") or {}).items() if k in ("CPU", "GPU")
            },
            "min_workers": spec.get("min_workers", 0),
            "max_workers": spec.get("max_workers", 1),
        }
        for name, spec in config["available_node_types"].items()
        if name != head
    }


def _config(node_types: Mapping[str, Mapping[str, Any]], gcs_address: str) -> dict[str, Any]:
    types: dict[str, Any] = {
        "ray.head.default": {"resources": {}, "node_config": {}, "max_workers": 0}
    }
    for name, spec in node_types.items():
        resources = {**spec["resources"], "object_store_memory": 300 * 1024**2}
        types[name] = {**spec, "resources": resources, "node_config": {}}
    return {
        "cluster_name": "fake",
        "max_workers": sum(int(t.get("max_workers", 1)) for t in node_types.values()),
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 5,
        # as Ray's own fake cluster example: nodes are started in-process, no SSH, no updaters
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs_address,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "auth": {"ssh_user": "ubuntu"},
        "available_node_types": types,
        "head_node_type": "ray.head.default",
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


@contextmanager
def fake_autoscaling_cluster(
    node_types: Mapping[str, Mapping[str, Any]], extra_env: Mapping[str, str] | None = None
) -> Iterator[FakeCluster]:
    """A head with no CPU and no GPU and ``node_types`` scaling from their ``min_workers``."""
    import ray._private.services

    folder = tempfile.mkdtemp(prefix="taso-fake-")
    gcs_port, agent_port, client_port, metrics_port = free_ports(4)
    ip = ray._private.services.get_node_ip_address()
    gcs_address = f"{ip}:{gcs_port}"
    config_file = f"{folder}/cluster.yaml"
    Path(config_file).write_text(yaml.safe_dump(_config(node_types, gcs_address)))
    env = {
        **os.environ,
        "HOME": f"{folder}/home",
        "RAY_AUTH_MODE": "token",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_FAKE_CLUSTER": "1",
        "AUTOSCALER_UPDATE_INTERVAL_S": "1",
        **(extra_env or {}),
    }
    for name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(name, None)
    token = subprocess.run(
        [RAY, "get-auth-token", "--generate"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()
    with open(f"{folder}/head.log", "w") as log:
        head = subprocess.Popen(
            [
                RAY,
                "start",
                "--head",
                "--block",
                f"--port={gcs_port}",
                "--num-cpus=0",
                "--num-gpus=0",
                f"--temp-dir={folder}/ray",
                f"--autoscaling-config={config_file}",
                "--include-dashboard=false",
                f"--dashboard-agent-listen-port={agent_port}",
                f"--ray-client-server-port={client_port}",
                f"--metrics-export-port={metrics_port}",
                "--disable-usage-stats",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE")}
    try:
        _wait_for_autoscaler(folder, head)
        # the driver in this process joins with the cluster's token
        os.environ.update({"RAY_AUTH_TOKEN": token, "RAY_AUTH_MODE": "token"})
        _reset_token_cache()
        yield FakeCluster(gcs_address, folder, env)
    finally:
        import ray

        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reset_token_cache()
        _stop(head)
        shutil.rmtree(folder, ignore_errors=True)


def _reset_token_cache() -> None:
    """Ray keeps the authentication mode and the first token a process reads; each fake cluster has
    its own token."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def _wait_for_autoscaler(folder: str, head: subprocess.Popen, timeout: float = 120) -> None:
    logs = Path(folder, "ray", "session_latest", "logs")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert head.poll() is None, Path(folder, "head.log").read_text()[-3000:]
        monitor = logs / "monitor.log"
        if monitor.exists() and "Monitor: Started" in monitor.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise AssertionError(
        f"the autoscaler did not start in {timeout:.0f} s: "
        + json.dumps(Path(folder, "head.log").read_text()[-2000:])
    )
